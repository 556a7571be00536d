"""htaf.analysis.figures and ``htaf plot``: every figure is written as valid PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import pytest

from htaf.analysis import figures
from htaf.cli import main

ACTIVATION_STEMS = {
    "htaf_curves",
    "gradient_ratio_alpha0",
    "gradient_ratio_alpha1",
    "htaf_vs_sigmoid_ratio",
    "derivatives",
}


def check_files(paths: list[Path], stems: set[str]) -> None:
    assert {p.stem for p in paths} == stems
    assert sorted(p.suffix for p in paths) == sorted([".png", ".svg"] * len(stems))
    for path in paths:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            assert b"<svg" in data
    # Atomic writes leave no temporary files behind.
    assert sorted(paths) == sorted(paths[0].parent.iterdir())


def test_activation_figures(tmp_path):
    out = tmp_path / "new" / "dir"
    paths = figures.activation_figures(out)
    check_files(paths, ACTIVATION_STEMS)


def test_activation_figures_with_lists(tmp_path):
    paths = figures.activation_figures(tmp_path, alpha0=[1.0, 2.0], alpha1=[3.0])
    check_files(paths, ACTIVATION_STEMS)
    with pytest.raises(ValueError, match="alpha1"):
        figures.activation_figures(tmp_path / "bad", alpha1=[-1.0])


def test_bounds_figure(tmp_path):
    paths = figures.bounds_figure(tmp_path, eps=0.05, delta=0.2)
    check_files(paths, {"alpha0_bound"})


@pytest.mark.parametrize("kwargs, name", [({"eps": 0.7}, "eps"), ({"delta": -1.0}, "delta")])
def test_bounds_figure_rejects_bad_input(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        figures.bounds_figure(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_cli_plot(tmp_path, capsys):
    assert main(["plot", "activation", "--out", str(tmp_path / "a")]) == 0
    assert len(list((tmp_path / "a").glob("*.png"))) == len(ACTIVATION_STEMS)
    assert main(["plot", "bounds", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "alpha0_bound.svg").exists()
    assert main(["plot", "bounds", "--out", str(tmp_path / "c"), "--eps", "0.7"]) == 2
    assert "eps" in capsys.readouterr().err
