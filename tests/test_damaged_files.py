"""Damaged safetensors files (cut short, a header that is not JSON, a pickle): every reader names
the file and raises a ``ValueError``, which the command line turns into exit status 2."""

import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save

from htaf.config import ConfigError, RunConfig
from htaf.io import SafetensorsFileError, read_safetensors, read_safetensors_metadata
from htaf.train.checkpoint import load_safetensors, save_safetensors


def damage(path, how):
    """Write a damaged safetensors file at ``path``; returns it."""
    good = save({"w": torch.ones(64, 4)}, metadata={"k": "v"})
    if how == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif how == "not_json":
        header = b"this is not JSON at all!"
        path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    elif how == "pickle":
        path.write_bytes(pickle.dumps({"w": torch.ones(3)}))
    else:
        raise AssertionError(how)
    return path


HOW = ["truncated", "not_json", "pickle"]


@pytest.mark.parametrize("how", HOW)
def test_read_safetensors_names_the_damaged_file(tmp_path, how):
    path = damage(tmp_path / "x.safetensors", how)
    for read in (read_safetensors, read_safetensors_metadata,
                 lambda p, what: read_safetensors(p, framework="numpy", what=what)):  # fmt: skip
        with pytest.raises(SafetensorsFileError, match=r"weights file .*x\.safetensors is not a"):
            read(path, what="weights file")
    assert issubclass(SafetensorsFileError, ValueError)


def test_read_safetensors_reads_a_good_file_and_a_missing_one_is_an_oserror(tmp_path):
    (tmp_path / "g.safetensors").write_bytes(save({"a": torch.arange(3)}, metadata={"k": "v"}))
    tensors, meta = read_safetensors(tmp_path / "g.safetensors")
    assert torch.equal(tensors["a"], torch.arange(3)) and meta == {"k": "v"}
    arrays, _ = read_safetensors(tmp_path / "g.safetensors", framework="numpy")
    assert np.array_equal(arrays["a"], np.arange(3))
    with pytest.raises(FileNotFoundError, match="missing"):
        read_safetensors(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("how", HOW)
def test_load_safetensors_on_a_damaged_file(tmp_path, how):
    path = damage(tmp_path / "model.safetensors", how)
    with pytest.raises(ValueError, match=r"model\.safetensors"):
        load_safetensors(torch.nn.Linear(4, 64), path)


def test_load_safetensors_with_damaged_metadata(tmp_path):
    from htaf.train.checkpoint import CheckpointError

    model = torch.nn.Linear(4, 2)
    path = save_safetensors(model, tmp_path / "model.safetensors")
    tensors, meta = read_safetensors(path)
    path.write_bytes(save(tensors, metadata={**meta, "extra_state": "{not json"}))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: its metadata 'extra_state'"):
        load_safetensors(model, path)


@pytest.mark.parametrize("how", HOW)
def test_damaged_features_and_weights_files(tmp_path, how):
    from htaf.families import prepare_data
    from htaf.families.icbm.backbones import SmallCNN, load_weights
    from icbm_data import shapes_standin

    path = damage(tmp_path / "f.safetensors", how)
    cfg = RunConfig(family="icbm", dataset="shapes", model={"backbone": f"features:{path}"})
    with pytest.raises(ConfigError, match=r"features file .*f\.safetensors"):
        prepare_data(cfg, shapes_standin(40))
    with pytest.raises(ConfigError, match=r"weights file .*f\.safetensors"):
        load_weights(SmallCNN(3, 32, (4, 8, 8)), path, "small_cnn")
