"""The image-and-active-concepts figure of ``htaf concepts``: the image never covers the
concept names (the chart's y tick labels)."""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest

from htaf.analysis.concept_plots import image_concepts_figure


@pytest.mark.parametrize("with_weights", [True, False])
def test_image_does_not_cover_the_concept_names(with_weights):
    rng = np.random.default_rng(0)
    K, C = 24, 3
    active = np.zeros((1, K), dtype=bool)
    active[0, ::2] = True
    out = SimpleNamespace(y=np.array([0]), pred=np.array([1]), active=active,
                          smooth=rng.random((1, K)))  # fmt: skip
    label = {k: f"a rather long attribute name number {k}" for k in range(K)}
    weights = rng.normal(size=(C, K)) if with_weights else None
    img = rng.integers(0, 255, size=(3, 32, 32))
    fig = image_concepts_figure(0, img, out, ["cat", "dog", "bird"], weights, label)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax_img, ax = fig.axes[0], fig.axes[1]
        image_box = ax_img.get_window_extent(renderer)
        labels = [t for t in ax.get_yticklabels() if t.get_text()]
        assert len(labels) == K // 2
        for t in labels:
            box = t.get_window_extent(renderer)
            assert not image_box.overlaps(box), t.get_text()
            assert box.x0 >= image_box.x1
    finally:
        plt.close(fig)
