"""The model-statistics figure: readable values and estimators told apart (e.g. SNN rate_input,
the same for every estimator, on a narrow range)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from htaf.analysis.plots import model_stats_figure


def _records(rate_input, rate_layer1):
    return [
        {
            "config": {"estimator": est},
            "history": [
                {"epoch": e + 1, "model_stats": {"rate_input": rate_input(e),
                                                 "rate_layer1": rate_layer1(i, e)}}
                for e in range(4)
            ],
        }
        for i, est in enumerate(["htaf", "ste", "atan", "fast_sigmoid", "relu_free"])
    ]  # fmt: skip


def test_rate_input_has_no_offset_and_distinct_lines():
    records = _records(lambda e: 0.30495 + 0.00008 * e, lambda i, e: 0.1 * i + 0.01 * e)
    fig = model_stats_figure(records)
    try:
        fig.canvas.draw()
        axes = {ax.get_title().split("\n")[0]: ax for ax in fig.axes if ax.get_title()}
        for name in ("rate_input", "rate_layer1"):
            ax = axes[name]
            assert ax.yaxis.get_offset_text().get_text() == ""
            lines = ax.get_lines()
            assert len(lines) == 5
            styles = {(ln.get_marker(), ln.get_linestyle()) for ln in lines}
            assert len(styles) == len(lines)
            assert len({ln.get_marker() for ln in lines}) == len(lines)
        assert "identical for every estimator" in axes["rate_input"].get_title()
        assert "identical" not in axes["rate_layer1"].get_title()
    finally:
        plt.close(fig)


def test_no_statistics_no_figure():
    assert model_stats_figure([{"config": {"estimator": "ste"}, "history": [{"epoch": 1}]}]) is None
