"""htaf._build, the one build helper: sources from csrc/ with their headers, the cache key,
the instruction-set flags, and the package data that ships the sources."""

from __future__ import annotations

import ctypes
import fnmatch
import logging
import re
from pathlib import Path

import pytest

from htaf import _build

ROOT = Path(__file__).resolve().parents[1]

SOURCE = """
#include "value.h"
int probe_abi(void) { return 3; }
int probe_value(void) { return VALUE; }
"""


@pytest.fixture
def csrc(tmp_path, monkeypatch):
    """A csrc folder with one source and one header, and an empty cache."""
    if _build.compiler() is None:
        pytest.skip("no C compiler")
    folder = tmp_path / "csrc"
    folder.mkdir()
    (folder / "probe.c").write_text(SOURCE)
    (folder / "value.h").write_text("#define VALUE 7\n")
    monkeypatch.setattr(_build, "CSRC", folder)
    monkeypatch.setenv("HTAF_KERNEL_CACHE", str(tmp_path / "cache"))
    return folder


def load(**kw) -> ctypes.CDLL | None:
    found = _build.first_library("probe", "probe.c", _build.compiler(), ("probe_abi", 3), **kw)
    return None if found is None else found[0]


def test_a_source_builds_with_its_header_and_a_changed_header_rebuilds(csrc, tmp_path):
    assert load().probe_value() == 7
    assert len(list((tmp_path / "cache").glob("probe_*.so"))) == 1
    (csrc / "value.h").write_text("#define VALUE 8\n")  # the key covers the headers
    assert load().probe_value() == 8
    assert len(list((tmp_path / "cache").glob("probe_*.so"))) == 2
    assert not list((tmp_path / "cache").glob(".build-*"))  # temporary folders removed


def test_a_wrong_abi_or_a_broken_source_gives_none(csrc):
    assert _build.first_library("probe", "probe.c", _build.compiler(), ("probe_abi", 4)) is None
    (csrc / "probe.c").write_text("this is not C\n")
    assert load() is None


@pytest.mark.parametrize(("name", "flags"), [("", ["-march=native"]), ("avx2", ["-mavx2", "-mfma"]),
                                             ("generic", [])])  # fmt: skip
def test_isa_flags_lead_the_variants(monkeypatch, name, flags):
    monkeypatch.setenv("HTAF_KERNEL_ISA", name)
    assert _build.isa_flags() == flags
    variants = _build.flag_variants()
    assert variants[0] == [*flags, "-fopenmp"] and variants[-1] == []


def test_an_unknown_isa_is_named_and_native_used(monkeypatch, caplog):
    monkeypatch.setenv("HTAF_KERNEL_ISA", "avx9000")
    with caplog.at_level(logging.WARNING, logger="htaf._build"):
        assert _build.isa_flags() == ["-march=native"]
    assert "HTAF_KERNEL_ISA" in caplog.text and "avx9000" in caplog.text


def test_every_source_in_csrc_ships_as_package_data():
    table = (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.package-data]")[1]
    patterns = re.findall(r'"([^"]+)"', re.search(r'^"htaf" = \[(.*)\]', table, re.M).group(1))
    sources = [f"csrc/{p.name}" for p in (ROOT / "src" / "htaf" / "csrc").iterdir()]
    assert {"csrc/htaf_kernels.c", "csrc/htaf_exp.h", "csrc/lif_kernels.cpp"} <= set(sources)
    for name in sources:
        assert any(fnmatch.fnmatch(name, pat) for pat in patterns), name
