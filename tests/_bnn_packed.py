"""Shared helpers for the packed-export tests: models with non-default BatchNorm statistics,
a float64 reference of every binary layer's integer pre-activations, and a tiny trained run."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import htaf
from htaf.families import DataSpec
from htaf.families.bnn import BNNOptions, build


def random_bnn(arch="small_cnn", shape=(1, 8, 8), scaling="none", n_out=10, seed=0, **options):
    """A hardened, eval-mode BNN whose BatchNorms and scales are far from their defaults
    (negative gammas and, with learned scaling, negative scales: both fold directions)."""
    torch.manual_seed(seed)
    if arch == "small_cnn":
        options.setdefault("widths", (8, 16, 16))
    if arch == "binarynet_mlp":
        options.setdefault("widths", (64, 48))
    model = build(BNNOptions(arch=arch, scaling=scaling, **options),
                  DataSpec("image", shape, n_out, "multiclass"), "ste_clipped", {})  # fmt: skip
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-4, 4)
                m.running_var.uniform_(0.3, 30)
                m.weight.uniform_(-1, 1)
                m.bias.uniform_(-2, 2)
        if scaling == "learned":
            for layer in model.binary_layers().values():
                layer.scale.uniform_(-1, 1)
    htaf.harden(model)
    return model.eval()


def float64_preactivations(model, x):
    """Each binary layer's integer pre-activation, recomputed in float64 from the signs of its
    input and of its latent weights (padding with its pad_value): independent of htaf's op."""
    seen = {}
    hooks = []
    for name, layer in model.binary_layers().items():
        if layer.input_quantizer is None:
            continue

        def hook(mod, args, _out, name=name):
            xs = torch.where(args[0] >= 0, 1.0, -1.0).double()
            ws = torch.where(mod.weight >= 0, 1.0, -1.0).double()
            if isinstance(mod, torch.nn.Conv2d):
                xs = F.pad(xs, mod._reversed_padding_repeated_twice, value=mod.pad_value)
                seen[name] = F.conv2d(xs, ws, stride=mod.stride)
            else:
                seen[name] = xs @ ws.T

        hooks.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    return logits, seen


def tiny_run(out, estimator="ste_clipped"):
    """A small_cnn bnn run on digits_images, trained briefly (enough to be far from init)."""
    from htaf.config import RunConfig

    config = RunConfig(family="bnn", dataset="digits_images", estimator=estimator,
                       epochs=1, batch_size=64, lr=3e-3, model={"widths": [8, 16, 16]})  # fmt: skip
    return htaf.train_one(config, out, progress=False)
