"""Image datasets: loaders on small files written in each official format, the lazy
``ImageFiles`` (through real DataLoader workers), official-file checks and downloads."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from htaf.cli import main
from htaf.data import DataError, ImageFiles, available, cifar, from_arrays, load, mnist, verify
from htaf.data import shapes as shapes_mod
from htaf.data.arrays import channel_stats
from htaf.data.official import Official, extract
from htaf.data.registry import registered


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.delenv("HTAF_DATA", raising=False)
    monkeypatch.chdir(tmp_path)


def files_under(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())


# --- writers: the official formats ------------------------------------------------------------


def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX: magic 0x0000 08 NDIM, big-endian uint32 dims, then the unsigned bytes."""
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def write_mnist(d: Path, n_train=80, n_test=20, folder="mnist", seed=0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    (d / folder).mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        (d / folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(arr)))
    return arrays


def cifar_records(n: int, label_bytes: int, n_classes: int, seed: int) -> tuple[bytes, np.ndarray]:
    """Records: label byte(s), then the R, G, B 32x32 planes; returns (bytes, images)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = np.stack([np.arange(n) % 20, np.arange(n) % n_classes][-label_bytes:], axis=1)
    rec = np.concatenate([labels.astype(np.uint8), X.reshape(n, -1)], axis=1)
    return rec.tobytes(), X


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]  # fmt: skip


def write_cifar10(d: Path, per_batch=20, n_test=20) -> Path:
    folder = d / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}.bin").write_bytes(cifar_records(per_batch, 1, 10, i)[0])
    (folder / "test_batch.bin").write_bytes(cifar_records(n_test, 1, 10, 9)[0])
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES) + "\n\n")
    return folder


def write_cifar100(d: Path, n_train=700, n_test=100) -> Path:
    folder = d / "cifar-100-binary"
    folder.mkdir(parents=True)
    (folder / "train.bin").write_bytes(cifar_records(n_train, 2, 100, 1)[0])
    (folder / "test.bin").write_bytes(cifar_records(n_test, 2, 100, 2)[0])
    (folder / "fine_label_names.txt").write_text("".join(f"fine{k}\n" for k in range(100)))
    (folder / "coarse_label_names.txt").write_text("".join(f"coarse{k}\n" for k in range(20)))
    return folder


def tar_folder(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    """A .tar.gz holding ``folder`` (as ``folder.name/...``) and ``extra`` members."""
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(folder, arcname=folder.name)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return archive


def jpeg(path: Path, w: int, h: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, "JPEG")


def write_cub(d: Path, n_classes=3, n_train=8, n_test=3, n_attr=5) -> Path:
    """A small CUB_200_2011 tree; attributes.txt beside the folder, as the archive has it."""
    root = d / "CUB_200_2011"
    images, labels, split, attrs = [], [], [], []
    classes = [f"{k + 1:03d}.Bird_{k}" for k in range(n_classes)]
    i = 0
    for k, cls in enumerate(classes):
        for j in range(n_train + n_test):
            i += 1
            rel = f"{cls}/Bird_{k}_{j}.jpg"
            jpeg(root / "images" / rel, 40 + j, 30 + k, seed=i)
            images.append(f"{i} {rel}")
            labels.append(f"{i} {k + 1}")
            split.append(f"{i} {int(j < n_train)}")
            for a in range(1, n_attr + 1):
                attrs.append(f"{i} {a} {int((i + a) % 3 == 0)} 3 {a * 1.5:.3f}")
    class_lines = [f"{k + 1} {c}" for k, c in enumerate(classes)]
    for name, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                        ("train_test_split.txt", split), ("classes.txt", class_lines)):  # fmt: skip
        (root / name).write_text("\n".join(lines) + "\n")
    (root / "attributes").mkdir()
    (root / "attributes" / "image_attribute_labels.txt").write_text("\n".join(attrs) + "\n")
    names = [f"{a} has_part::value_{a}" for a in range(1, n_attr + 1)]
    (d / "attributes.txt").write_text("\n".join(names) + "\n")
    return root


def write_tiny(d: Path, wnids=("n02", "n01", "n03"), n_train=8, n_val=3) -> Path:
    root = d / "tiny-imagenet-200"
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    words = [f"{w}\tthing {w}, other name" for w in wnids] + ["n99\tunused"]
    (root / "words.txt").write_text("\n".join(words) + "\n")
    ann, i = [], 0
    for k, w in enumerate(wnids):
        for j in range(n_train):
            jpeg(root / "train" / w / "images" / f"{w}_{j}.JPEG", 64, 64, seed=100 * k + j)
        for _ in range(n_val):
            jpeg(root / "val" / "images" / f"val_{i}.JPEG", 64, 64, seed=1000 + i)
            ann.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
            i += 1
    (root / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    return root


# --- in memory: digits_images, shapes, arrays -------------------------------------------------


def test_digits_images_uint8_scaled_and_same_split_as_the_table():
    ds = load("digits_images")
    table = load("digits")
    assert ds.kind == "image" and ds.input_shape == (1, 8, 8) and ds.feature_names == []
    assert ds.X_train.dtype == np.uint8 and ds.X_train.max() == 255
    assert set(np.unique(ds.X_train)) <= {round(v * 255 / 16) for v in range(17)}
    assert np.array_equal(ds.y_test, table.y_test) and np.array_equal(ds.y_val, table.y_val)
    # float_batch: x / 255 recovers sklearn's v / 16 before normalisation
    assert ds.normalize == channel_stats(ds.X_train)
    x = ds.float_batch(torch.from_numpy(ds.X_train))
    assert x.dtype == torch.float32 and x.shape == (len(ds.y_train), 1, 8, 8)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    v16 = ds.X_train[:5].astype(np.float64) / 255 * 16
    assert np.allclose(v16, np.round(v16), atol=0.04)


def test_channel_stats_are_the_exact_mean_and_std():
    X = np.random.default_rng(0).integers(0, 256, (50, 3, 4, 5), dtype=np.uint8)
    stats = channel_stats(X)
    f = X.astype(np.float64) / 255
    assert np.allclose(stats["mean"], f.mean(axis=(0, 2, 3)))
    assert np.allclose(stats["std"], f.std(axis=(0, 2, 3)))


def test_shapes_concepts_match_the_class_rule_and_the_pixels():
    ds = load("shapes", n=800, split_seed=3)
    assert ds.X_train.dtype == np.uint8 and ds.input_shape == (3, 32, 32)
    assert ds.n_classes == 16 and len(ds.concept_names) == 8
    assert ds.concept_names[:2] == ["shape=ring", "shape=square"]
    assert ds.class_names[0] == "red_ring" and ds.class_names[-1] == "blue_cross"
    C = np.concatenate([ds.concepts_train, ds.concepts_val, ds.concepts_test])
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    groups = {}
    for j, name in enumerate(ds.concept_names):
        groups.setdefault(name.split("=")[0], []).append(j)
    assert list(groups) == ["shape", "colour"]
    for cols in groups.values():  # one value per attribute
        assert np.all(C[:, cols].sum(1) == 1)
    index = {a: C[:, cols].argmax(1) for a, cols in groups.items()}
    assert np.array_equal(shapes_mod.class_of(index["shape"], index["colour"]), y)
    assert np.bincount(y, minlength=16).min() > 20  # each class has probability 1/16
    # every attribute value changes the class: a linear rule on the concepts is exact
    onehot_rule = np.zeros((8, 16))
    for k in range(16):
        onehot_rule[k // 4, k] = onehot_rule[4 + k % 4, k] = 1
    assert np.array_equal((C @ onehot_rule).argmax(1), y)
    # the attributes drive the pixels: the pixels off the background carry the shape's colour
    X = np.concatenate([ds.X_train, ds.X_val, ds.X_test]).astype(int)
    background = np.median(X.reshape(len(X), 3, -1), axis=2)[:, :, None, None]
    covered = np.abs(X - background).max(1) > 60
    mean_rgb = (X * covered[:, None]).sum((2, 3)) / covered.sum((1, 2))[:, None]
    nearest = np.abs(mean_rgb[:, None] - shapes_mod.RGB[None]).sum(2).argmin(1)
    assert (nearest == index["colour"]).mean() > 0.95


def test_shapes_is_deterministic_in_the_seed_and_checks_options():
    a, b = load("shapes", n=320, split_seed=1), load("shapes", n=320, split_seed=1)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.concepts_test, b.concepts_test)
    c = load("shapes", n=320, split_seed=2)
    assert not np.array_equal(a.X_train, c.X_train)
    quiet = load("shapes", n=320, split_seed=1, noise=0.0)
    assert not np.array_equal(quiet.X_train, a.X_train)
    assert quiet.meta["shapes"] == {"n": 320, "difficulty": 0, "noise": 0.0, "clutter": 0,
                                    "occlusion": 0.0, "kinds": 4, "colours": 4,
                                    "seed": 1}  # fmt: skip
    assert sum(a.meta["split_sizes"].values()) == 320 and a.meta["split_sizes"]["test"] == 64
    for bad, match in (({"n": 100}, "n must be"), ({"noise": 2}, "noise must be"),
                       ({"seed": -1}, "seed must be"), ({"difficulty": 5}, "difficulty must"),
                       ({"difficulty": 1.0}, "difficulty must"), ({"clutter": 9}, "clutter must"),
                       ({"clutter": 1.5}, "clutter must"), ({"occlusion": 0.9}, "occlusion must"),
                       ({"occlusion": "x"}, "occlusion must")):  # fmt: skip
        with pytest.raises(DataError, match=match):
            load("shapes", **bad)
    with pytest.raises(DataError, match="not a table; target"):
        load("shapes", n=320, target="y")


def test_shapes_difficulty_adds_distractors_and_bands_but_keeps_labels():
    easy = load("shapes", n=320, split_seed=4)
    level0 = load("shapes", n=320, split_seed=4, difficulty=0)
    assert np.array_equal(easy.X_train, level0.X_train)  # level 0 is the set without the knob
    hard = load("shapes", n=320, split_seed=4, difficulty=3)
    assert hard.meta["shapes"]["clutter"] == shapes_mod.LEVELS[3][1]
    assert np.array_equal(hard.y_train, easy.y_train)  # nuisances only: same classes, concepts
    assert np.array_equal(hard.concepts_test, easy.concepts_test)
    again = load("shapes", n=320, split_seed=4, difficulty=3)
    assert np.array_equal(hard.X_train, again.X_train)  # deterministic in the seed
    # a named option wins over the level's; each nuisance changes the pixels on its own
    noisy = load("shapes", n=320, split_seed=4, difficulty=3, noise=0.05)
    assert noisy.meta["shapes"]["noise"] == 0.05
    assert noisy.meta["shapes"]["occlusion"] == shapes_mod.LEVELS[3][2]
    X0, *_ = shapes_mod.generate(200, 7, 0.0)
    Xc, *_ = shapes_mod.generate(200, 7, 0.0, clutter=2)
    Xo, *_ = shapes_mod.generate(200, 7, 0.0, occlusion=0.5)
    # the palette's colours: how many pixels of each image are coloured (not grey)
    coloured = [(np.ptp(X.astype(int), axis=1) > 60).sum((1, 2)) for X in (X0, Xc, Xo)]
    assert np.all(coloured[1] >= coloured[0]) and coloured[1].mean() > coloured[0].mean() + 10
    assert np.all(coloured[2] <= coloured[0]) and coloured[2].mean() < 0.8 * coloured[0].mean()


# The generator as it was before the kinds and colours options (commit 3ea9bf2), kept to check
# that the defaults still draw the very same images, labels and concepts.
def _original_masks(shape, cx, cy, r):
    y, x = np.mgrid[0:32, 0:32] + 0.5
    dx, dy = x[None] - cx[:, None, None], y[None] - cy[:, None, None]
    r = r[:, None, None]
    ring = (dx**2 + dy**2 <= r**2) & (dx**2 + dy**2 >= (0.5 * r) ** 2)
    square = (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
    depth = dy + r
    triangle = (dy <= 0.75 * r) & (depth >= 0) & (np.abs(dx) <= depth / 1.75)
    arm = 0.35 * r
    cross = ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    return np.choose(shape[:, None, None], [ring, square, triangle, cross])


def _original_generate(n, seed, noise, clutter, occlusion):
    rgb = np.array([(215, 45, 40), (225, 205, 40), (45, 175, 65), (45, 80, 215)], dtype=float)
    rng = np.random.default_rng(seed)
    shape, colour_idx = rng.integers(0, 4, n), rng.integers(0, 4, n)
    r = rng.uniform(6.0, 9.0, n)
    cx, cy = (rng.uniform(r + 0.5, 32 - r - 0.5) for _ in range(2))
    colour = np.clip(rgb[colour_idx] + rng.uniform(-20, 20, (n, 3)), 0, 255)
    background = rng.uniform(25.0, 220.0, n)
    inside = _original_masks(shape, cx, cy, r)[:, None]
    img = np.broadcast_to(background[:, None, None, None], (n, 3, 32, 32))
    extra = np.random.default_rng([seed, 1])
    for _ in range(clutter):
        kind, tone = extra.integers(0, 4, n), extra.integers(0, 4, n)
        rd = extra.uniform(2.5, 4.0, n)
        dx, dy = (extra.uniform(rd + 0.5, 32 - rd - 0.5) for _ in range(2))
        tint = np.clip(rgb[tone] + extra.uniform(-20, 20, (n, 3)), 0, 255)
        img = np.where(_original_masks(kind, dx, dy, rd)[:, None], tint[:, :, None, None], img)
    img = np.where(inside, colour[:, :, None, None], img)
    if occlusion > 0:
        hidden = shapes_mod.band(extra, cx, cy, r, occlusion)[:, None]
        img = np.where(hidden, background[:, None, None, None], img)
    if noise > 0:
        img = img + rng.normal(0.0, noise * 255.0, img.shape)
    X = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    concepts = np.concatenate(
        [np.eye(4, dtype=np.uint8)[shape], np.eye(4, dtype=np.uint8)[colour_idx]], 1
    )
    return X, (shape * 4 + colour_idx).astype(np.int64), concepts


@pytest.mark.parametrize("level", sorted(shapes_mod.LEVELS))
def test_shapes_defaults_draw_the_original_images(level):
    noise, clutter, occlusion = shapes_mod.LEVELS[level]
    expected = _original_generate(150, 9, noise, clutter, occlusion)
    named = {"kinds": 4, "colours": 4}
    for got in (shapes_mod.generate(150, 9, noise, clutter, occlusion),
                shapes_mod.generate(150, 9, noise, clutter, occlusion, **named)):  # fmt: skip
        for g, e in zip(got, expected, strict=True):
            assert g.dtype == e.dtype and np.array_equal(g, e)
    ds = load("shapes", n=320, split_seed=2, difficulty=level)
    named = load("shapes", n=320, split_seed=2, difficulty=level, kinds=4, colours=4)
    assert np.array_equal(ds.X_train, named.X_train) and np.array_equal(ds.y_test, named.y_test)
    assert ds.class_names == shapes_mod.CLASSES == shapes_mod.class_names(4, 4)
    assert ds.concept_names == shapes_mod.CONCEPT_NAMES == shapes_mod.concept_names(4, 4)


def test_shapes_more_kinds_and_colours_give_more_classes_and_concepts():
    ds = load("shapes", n=2000, split_seed=3, kinds=6, colours=8)
    assert ds.n_classes == 48 and len(ds.class_names) == 48 == len(set(ds.class_names))
    assert (
        ds.class_names[:2] == ["red_ring", "yellow_ring"]
        and ds.class_names[-1] == "pink_down_triangle"
    )
    assert ds.concept_names == shapes_mod.concept_names(6, 8) and len(ds.concept_names) == 14
    assert ds.concept_names[4:7] == ["shape=x", "shape=down_triangle", "colour=red"]
    assert ds.meta["shapes"]["kinds"] == 6 and ds.meta["shapes"]["colours"] == 8
    assert ds.meta["class_rule"].startswith("class = (shape, colour): shape * 8 + colour")
    for split in ("train", "val", "test"):  # every class in every split
        assert np.bincount(getattr(ds, f"y_{split}"), minlength=48).min() > 0
    C = np.concatenate([ds.concepts_train, ds.concepts_val, ds.concepts_test])
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert C.shape == (2000, 14) and set(np.unique(C)) == {0, 1}
    assert np.all(C[:, :6].sum(1) == 1) and np.all(C[:, 6:].sum(1) == 1)
    shape, colour = C[:, :6].argmax(1), C[:, 6:].argmax(1)
    assert np.array_equal(shapes_mod.class_of(shape, colour, 8), y)
    # each class is exactly one (shape, colour) pair: the linear rule on the concepts is exact
    rule = np.zeros((14, 48))
    for k in range(48):
        rule[k // 8, k] = rule[6 + k % 8, k] = 1
    assert np.array_equal((C @ rule).argmax(1), y)
    # the pixels off the background carry the drawn colour, the new ones included
    X = np.concatenate([ds.X_train, ds.X_val, ds.X_test]).astype(int)
    background = np.median(X.reshape(len(X), 3, -1), axis=2)[:, :, None, None]
    covered = np.abs(X - background).max(1) > 60
    mean_rgb = (X * covered[:, None]).sum((2, 3)) / covered.sum((1, 2))[:, None]
    nearest = np.abs(mean_rgb[:, None] - shapes_mod.PALETTE[None]).sum(2).argmin(1)
    assert (nearest == colour).mean() > 0.95
    # the extra shapes are drawn, and each differs from every other kind at the same place
    r = np.full(6, 7.5)
    m = shapes_mod.masks(np.arange(6), np.full(6, 16.0), np.full(6, 16.0), r)
    overlap = (m[:, None] & m[None]).sum((2, 3)) / (m[:, None] | m[None]).sum((2, 3))
    assert overlap[~np.eye(6, dtype=bool)].max() < 0.85 and m.sum((1, 2)).min() > 80
    # the palette: every pair, and every colour and the background greys, far apart
    P = shapes_mod.PALETTE
    pairs = np.linalg.norm(P[:, None] - P[None], axis=2)[~np.eye(8, dtype=bool)]
    grey = np.clip(P.mean(1), *shapes_mod.GREY)[:, None]
    assert pairs.min() > 100 and np.linalg.norm(P - grey, axis=1).min() > 95


def test_shapes_distractors_draw_every_active_kind_and_colour(monkeypatch):
    seen = []
    real = shapes_mod.masks
    monkeypatch.setattr(shapes_mod, "masks", lambda k, *a: seen.append(k) or real(k, *a))
    grey = np.full((600, 3, 32, 32), 128.0)
    img = shapes_mod.draw_distractor(grey, np.random.default_rng(0), kinds=6, colours=8)
    assert set(np.unique(seen[0])) == set(range(6))
    painted = (img != 128).any(1)
    rgb = (img * painted[:, None]).sum((2, 3)) / painted.sum((1, 2))[:, None]
    tone = np.abs(rgb[:, None] - shapes_mod.PALETTE[None]).sum(2).argmin(1)
    assert set(tone) == set(range(8))
    seen.clear()
    shapes_mod.draw_distractor(grey, np.random.default_rng(0))  # the defaults: the first four
    assert set(np.unique(seen[0])) == set(range(4))


def test_shapes_kinds_and_colours_are_checked():
    for bad, match in (({"kinds": 3}, "kinds must be an integer from 4 to 6, not 3"),
                       ({"kinds": 7}, "kinds must be an integer from 4 to 6"),
                       ({"kinds": 5.0}, "kinds must be"), ({"kinds": True}, "kinds must be"),
                       ({"colours": 3}, "colours must be an integer from 4 to 8, not 3"),
                       ({"colours": 9}, "colours must be an integer from 4 to 8"),
                       ({"colours": 4.5}, "colours must be"),
                       ({"colours": True}, "colours must be"),
                       ({"colours": "8"}, "colours must be"),
                       ({"kinds": 6, "colours": 8, "n": 479}, r"n must be an integer >= 480 "
                        r"\(10 per class, 48 classes\)")):  # fmt: skip
        with pytest.raises(DataError, match="^shapes: " + match):
            load("shapes", **{"n": 2000, **bad})
    assert load("shapes", n=480, kinds=6, colours=8).n_classes == 48


@pytest.mark.slow
def test_an_icbm_run_on_48_classes_and_its_concept_alignment(tmp_path):
    import htaf
    from htaf.analysis.concepts import analyze_run
    from htaf.families import data_spec

    options = {"n": 2000, "colours": 8, "kinds": 6}
    config = {"task": "icbm", "dataset": "shapes", "data_options": options, "epochs": 1,
              "batch_size": 128, "model": {"n_concepts": 16, "cnn_widths": [4, 8, 8]}}  # fmt: skip
    run = htaf.train_one(config, tmp_path / "run", progress=False)
    assert 0 <= run.metrics["test_accuracy_hard"] <= 1
    raw = run.dataset(raw=True)
    assert raw.n_classes == 48 and data_spec(raw).n_concepts == 14
    assert raw.concept_names == shapes_mod.concept_names(6, 8)
    summary = analyze_run(run.path)
    assert summary["n_concepts"] == 16  # the bottleneck's width; the attributes are the data's
    assert summary["attributes_varying"] == 14
    rows = (run.path / "concepts" / "alignment.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == shapes_mod.concept_names(6, 8)


def test_shapes_band_lies_within_the_shape_and_has_its_width():
    rng = np.random.default_rng(0)
    cx, cy, r = np.array([10.0, 20.0]), np.array([12.0, 16.0]), np.array([8.0, 6.0])
    b = shapes_mod.band(rng, cx, cy, r, 0.5)
    for i in range(2):
        rows, cols = b[i].any(1), b[i].any(0)
        horizontal = not rows.all()
        hit = np.flatnonzero(rows if horizontal else cols) + 0.5
        centre = (cy if horizontal else cx)[i]
        assert centre - r[i] <= hit.min() and hit.max() <= centre + r[i]
        assert abs(len(hit) - 0.5 * 2 * r[i]) <= 1  # pixel centres in a band of width r


def test_from_arrays_images_and_sequences():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 3, 4, 4), dtype=np.uint8)
    y = np.arange(60) % 3
    ds = from_arrays("mine", X, y)
    assert ds.X_train.dtype == np.uint8 and ds.n_classes == 3 and ds.input_shape == (3, 4, 4)
    assert ds.meta["split_sizes"] == {"train": 39, "val": 9, "test": 12}
    seq = rng.standard_normal((60, 7, 2)).astype(np.float32)
    s = from_arrays("seq", seq, y, kind="sequence", X_test=seq[:6], y_test=y[:6])
    assert s.kind == "sequence" and s.input_shape == (7, 2) and s.normalize is None
    assert s.n_features == 14 and len(s.y_test) == 6 and len(s.y_val) == 9
    batch = torch.from_numpy(s.X_train[:4])
    assert torch.equal(s.float_batch(batch), batch)  # float input, no normalisation
    with pytest.raises(DataError, match="must be 3-D"):
        from_arrays("seq", seq[:, 0], y, kind="sequence")
    with pytest.raises(DataError, match="label at index 2 is 7"):
        from_arrays("mine", X, np.array([0, 1, 7] + [0] * 57), class_names=["a", "b"])


# --- MNIST / Fashion-MNIST (IDX gz) -----------------------------------------------------------


def test_mnist_reads_idx_gz_and_keeps_the_official_split(tmp_path):
    arrays = write_mnist(tmp_path)
    ds = load("mnist", data_dir=tmp_path)
    assert ds.kind == "image" and ds.input_shape == (1, 28, 28) and ds.X_train.dtype == np.uint8
    assert ds.class_names == [str(d) for d in range(10)]
    assert np.array_equal(ds.X_test[:, 0], arrays["t10k-images-idx3-ubyte"])  # test untouched
    assert ds.X_test.flags.writeable and ds.X_test.flags.c_contiguous
    assert ds.meta["split_sizes"] == {"train": 68, "val": 12, "test": 20}  # val: 15 % of train
    train = np.concatenate([ds.X_train, ds.X_val])[:, 0]
    assert sorted(map(bytes, train)) == sorted(map(bytes, arrays["train-images-idx3-ubyte"]
                                                   .astype(np.uint8)))  # fmt: skip
    assert ds.normalize == channel_stats(ds.X_train)
    assert ds.meta["normalize_source"].startswith("per-channel mean/std of x/255 on the training")
    with pytest.raises(DataError, match=r"official test split; test_size=0\.3"):
        load("mnist", data_dir=tmp_path, test_size=0.3)


def test_fashion_mnist_torchvision_layout_and_uncompressed_files(tmp_path):
    arrays = write_mnist(tmp_path, folder="FashionMNIST/raw")
    ds = load("fashion_mnist", data_dir=tmp_path)
    assert ds.class_names[0] == "T-shirt/top" and len(ds.y_test) == 20
    other = tmp_path / "u"
    (other / "mnist").mkdir(parents=True)
    for name, arr in arrays.items():
        (other / "mnist" / name).write_bytes(idx_bytes(arr))
    assert np.array_equal(load("mnist", data_dir=other).X_test, ds.X_test)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda b: b[: len(b) // 2], r"train-images-idx3-ubyte\.gz: cannot read .*truncated"),
        (lambda b: gzip.compress(gzip.decompress(b)[:-100]), r"images-idx3-ubyte\.gz: truncated"),
        (lambda b: gzip.compress(b"\x00\x00\x08\x01" + gzip.decompress(b)[4:]), "magic number"),
        (lambda b: b"not a gzip file", r"images-idx3-ubyte\.gz: cannot read"),
    ],
)
def test_mnist_damaged_files_name_the_file_and_where_it_goes(tmp_path, damage, match):
    write_mnist(tmp_path)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=match) as e:
        load("mnist", data_dir=tmp_path)
    assert str(path) in str(e.value)


def test_mnist_mismatched_counts_and_missing_files(tmp_path):
    write_mnist(tmp_path)
    labels = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(np.arange(79) % 10)))
    with pytest.raises(DataError, match=r"holds 80 images but .*labels-idx1-ubyte\.gz holds 79"):
        load("mnist", data_dir=tmp_path)
    labels.write_bytes(gzip.compress(idx_bytes(np.arange(80) % 11)))
    with pytest.raises(DataError, match=r"labels-idx1-ubyte\.gz: label 10 of item 10"):
        load("mnist", data_dir=tmp_path)
    with pytest.raises(DataError) as e:
        load("fashion_mnist", data_dir=tmp_path / "empty")
    msg = str(e.value)
    assert "'fashion_mnist/train-images-idx3-ubyte.gz' not found" in msg
    assert str(tmp_path / "empty") in msg and "htaf datasets --fetch fashion_mnist" in msg


# --- CIFAR (binary version, folder or .tar.gz) ------------------------------------------------


def test_cifar10_folder_and_archive_give_the_same_dataset(tmp_path):
    folder = write_cifar10(tmp_path / "a")
    ds = load("cifar10", data_dir=tmp_path / "a")
    assert ds.input_shape == (3, 32, 32) and ds.X_train.dtype == np.uint8
    assert ds.class_names == CIFAR10_NAMES and ds.meta["split_sizes"]["test"] == 20
    assert ds.meta["split_sizes"] == {"train": 85, "val": 15, "test": 20}
    _, X_test = cifar_records(20, 1, 10, 9)
    assert np.array_equal(ds.X_test, X_test)  # planes R, G, B in record order: (C, H, W)
    for X in (ds.X_train, ds.X_val, ds.X_test):  # torch.from_numpy takes them without a warning
        assert X.flags.writeable and X.flags.c_contiguous
    assert np.array_equal(ds.y_test, np.arange(20) % 10)
    (tmp_path / "b").mkdir()
    tar_folder(folder, tmp_path / "b" / "cifar-10-binary.tar.gz")
    packed = load("cifar10", data_dir=tmp_path / "b")
    assert files_under(tmp_path / "b") == ["cifar-10-binary.tar.gz"]  # read, never unpacked
    for split in ("train", "val", "test"):
        assert np.array_equal(getattr(ds, f"X_{split}"), getattr(packed, f"X_{split}"))
    assert "member cifar-10-batches-bin/test_batch.bin" in " ".join(packed.meta["files"])


def test_cifar10_damaged_files(tmp_path):
    folder = write_cifar10(tmp_path)
    batch = folder / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"data_batch_3\.bin: 61455 bytes is not a whole number"):
        load("cifar10", data_dir=tmp_path)
    raw = bytearray(cifar_records(20, 1, 10, 3)[0])
    raw[3073 * 4] = 12  # record 4's label
    batch.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"data_batch_3\.bin: record 4 has label 12"):
        load("cifar10", data_dir=tmp_path)
    batch.unlink()
    with pytest.raises(DataError, match=r"data_batch_3\.bin: missing; the folder .* incomplete"):
        load("cifar10", data_dir=tmp_path)


def test_cifar10_damaged_archives(tmp_path):
    folder = write_cifar10(tmp_path / "src")
    d = tmp_path / "d"
    d.mkdir()
    archive = tar_folder(folder, d / "cifar-10-binary.tar.gz")
    archive.write_bytes(archive.read_bytes()[:2000])  # truncated download
    with pytest.raises(DataError, match=r"cifar-10-binary\.tar\.gz: cannot read the archive"):
        load("cifar10", data_dir=d)
    (folder / "test_batch.bin").unlink()
    tar_folder(folder, archive)
    with pytest.raises(DataError, match=r"member\(s\) \['cifar-10-batches-bin/test_batch.bin'\]"):
        load("cifar10", data_dir=d)


def test_cifar100_fine_and_coarse_labels(tmp_path):
    write_cifar100(tmp_path)
    fine = load("cifar100", data_dir=tmp_path)
    assert fine.n_classes == 100 and fine.class_names[7] == "fine7"
    assert np.array_equal(fine.y_test, np.arange(100) % 100)
    coarse = load("cifar100", data_dir=tmp_path, labels="coarse")
    assert coarse.n_classes == 20 and coarse.class_names[3] == "coarse3"
    assert np.array_equal(coarse.y_test, np.arange(100) % 20)
    assert np.array_equal(fine.X_test, coarse.X_test) and coarse.meta["labels"] == "coarse"
    with pytest.raises(DataError, match="labels must be 'fine' or 'coarse'"):
        load("cifar100", data_dir=tmp_path, labels="both")


# --- lazy image files -------------------------------------------------------------------------


def _epoch(X: ImageFiles, epoch: int, context: str | None = None, workers=2) -> torch.Tensor:
    X.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(
        X, batch_size=4, num_workers=workers, multiprocessing_context=context
    )
    return torch.cat(list(loader))


def test_image_files_augmentation_is_deterministic_across_workers(tmp_path):
    paths = [tmp_path / f"{i}.jpg" for i in range(10)]
    for i, p in enumerate(paths):
        jpeg(p, 40 + i, 36, seed=i)
    X = ImageFiles(paths, size=32, resize=36, pad=2, seed=5)
    assert X.shape == (10, 3, 32, 32) and len(X) == 10 and X.shape[1:] == (3, 32, 32)
    evaluation = _epoch(X, 0)
    assert evaluation.dtype == torch.uint8 and evaluation.shape == (10, 3, 32, 32)
    assert torch.equal(_epoch(X, 3), evaluation)  # no randomness outside training mode
    X.train()
    e0 = _epoch(X, 0)
    assert torch.equal(_epoch(X, 0), e0) and not torch.equal(e0, evaluation)
    e1 = _epoch(X, 1)
    assert not torch.equal(e1, e0)
    assert torch.equal(torch.stack([X[i] for i in range(10)]), e1)  # no workers: the same
    sub = X.subset([7, 2]).train()
    sub.set_epoch(1)
    assert torch.equal(sub[0], X[7])  # an image's draws follow it into a subset
    other_seed = ImageFiles(paths, size=32, resize=36, pad=2, seed=6).train()
    assert not torch.equal(torch.stack([other_seed[i] for i in range(10)]), _epoch(X, 0))
    fixed = ImageFiles(paths, size=32, resize=36, pad=2, augment=False).train()
    assert torch.equal(torch.stack([fixed[i] for i in range(10)]), evaluation)


def test_image_files_pickle_and_spawned_workers(tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(4)]
    for i, p in enumerate(paths):
        Image.fromarray(np.full((20, 30), 40 * i, dtype=np.uint8)).save(p)
    X = ImageFiles(paths, size=(16, 24), channels=1).train()
    X.set_epoch(2)
    copy = pickle.loads(pickle.dumps(X))
    assert torch.equal(copy[3], X[3]) and copy.training and copy.epoch == 2
    grey = _epoch(X.eval(), 0, context="spawn", workers=1)  # one: each spawn imports torch
    assert grey.shape == (4, 1, 16, 24) and grey[:, 0, 0, 0].tolist() == [0, 40, 80, 120]
    with pytest.raises(TypeError, match="lazily"):
        np.asarray(X)


def test_image_files_corrupt_and_missing_images_name_the_file(tmp_path):
    good, cut, junk = tmp_path / "good.jpg", tmp_path / "cut.jpg", tmp_path / "junk.jpg"
    jpeg(good, 64, 64, 0)
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    junk.write_bytes(b"this is not an image")
    X = ImageFiles([good, cut, junk, tmp_path / "gone.jpg"], size=32)
    assert X[0].shape == (3, 32, 32)
    for i, name in ((1, "cut.jpg"), (2, "junk.jpg")):
        with pytest.raises(DataError, match=rf"{name}: cannot decode the image.*Replace it"):
            X[i]
    with pytest.raises(DataError, match=r"gone\.jpg: image file not found"):
        X[3]
    with pytest.raises(DataError, match=r"cut\.jpg: cannot decode"):  # re-raised from a worker
        _epoch(X.subset([0, 1]), 0)
    with pytest.raises(DataError, match="resize=8 is smaller"):
        ImageFiles([good], size=32, resize=8)


def test_image_files_large_jpeg_decoded_at_reduced_scale_matches_full_decode(tmp_path):
    yy, xx = np.mgrid[0:300, 0:400]
    rgb = np.stack([xx * 255 // 399, yy * 255 // 299, (xx + yy) * 255 // 698], axis=2)
    Image.fromarray(rgb.astype(np.uint8)).save(tmp_path / "big.jpg", quality=95)
    fast = ImageFiles([tmp_path / "big.jpg"], size=32)[0]
    with Image.open(tmp_path / "big.jpg") as im:
        full = np.asarray(im.convert("RGB").resize((43, 32), Image.Resampling.BILINEAR))
    full = full[:, 5:37].transpose(2, 0, 1).astype(int)  # center crop of the full decode
    assert fast.shape == (3, 32, 32)
    assert np.abs(fast.numpy().astype(int) - full).mean() < 4


# --- CUB-200-2011 -----------------------------------------------------------------------------


def test_cub_tree_lazy_images_and_attribute_concepts(tmp_path):
    write_cub(tmp_path)
    ds = load("cub200", data_dir=tmp_path, size=32)
    assert isinstance(ds.X_train, ImageFiles) and ds.input_shape == (3, 32, 32)
    assert ds.class_names == ["Bird_0", "Bird_1", "Bird_2"]
    assert ds.meta["split_sizes"] == {"train": 20, "val": 4, "test": 9}
    assert ds.normalize == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert ds.concept_names == [f"has_part::value_{a}" for a in range(1, 6)]
    assert ds.concepts_test.shape == (9, 5) and ds.concepts_test.dtype == np.uint8
    # concept rows follow their images: test image 1 is image id 9 (class 0, j = 8)
    first = Path(ds.X_test.paths[0]).name
    assert first == "Bird_0_8.jpg"
    assert ds.concepts_test[0].tolist() == [int((9 + a) % 3 == 0) for a in range(1, 6)]
    batch = next(iter(torch.utils.data.DataLoader(ds.X_test, batch_size=9, num_workers=2)))
    assert batch.dtype == torch.uint8 and batch.shape == (9, 3, 32, 32)
    x = ds.float_batch(batch)
    assert x.dtype == torch.float32 and x.min() < -1 and x.max() > 1
    assert ds.X_train.resize == round(32 * 256 / 224) and ds.X_train.training is False
    without = load("cub200", data_dir=tmp_path, size=32, concepts=False)
    assert without.concepts_train is None and without.concept_names is None


def test_cub_missing_and_damaged_files(tmp_path):
    root = write_cub(tmp_path)
    attrs = root / "attributes" / "image_attribute_labels.txt"
    lines = attrs.read_text().splitlines()
    attrs.write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(DataError, match=r"image_attribute_labels\.txt: 162 attribute lines"):
        load("cub200", data_dir=tmp_path)
    attrs.write_text("\n".join([*lines[:-1], "33 9 1 3 2.0"]) + "\n")
    with pytest.raises(DataError, match=r"labels\.txt, data line 165: image 33, attribute 9"):
        load("cub200", data_dir=tmp_path)
    attrs.write_text("\n".join([*lines[:-1], lines[0]]) + "\n")  # 165 lines, one twice
    with pytest.raises(DataError, match=r"labels\.txt: 165 attribute lines, expected one for"):
        load("cub200", data_dir=tmp_path)
    attrs.write_text("\n".join([*lines[:-1], "33 5 yes"]) + "\n")
    with pytest.raises(DataError, match=r"labels\.txt: malformed line: could not convert"):
        load("cub200", data_dir=tmp_path)
    (tmp_path / "attributes.txt").unlink()
    with pytest.raises(DataError, match=r"attributes\.txt .* not found"):
        load("cub200", data_dir=tmp_path)
    assert load("cub200", data_dir=tmp_path, concepts=False).n_classes == 3
    (root / "images" / "002.Bird_1" / "Bird_1_4.jpg").unlink()
    with pytest.raises(DataError, match=r"Bird_1_4\.jpg: image file not found.*incomplete"):
        load("cub200", data_dir=tmp_path, concepts=False)
    (root / "train_test_split.txt").write_text("1 1\n")
    with pytest.raises(DataError, match=r"train_test_split\.txt: no line for image id 2"):
        load("cub200", data_dir=tmp_path, concepts=False)
    with pytest.raises(DataError, match=r"'CUB_200_2011\.tgz' \(or the unpacked folder"):
        load("cub200", data_dir=tmp_path / "none")


def test_cub_archive_is_unpacked_once_and_safely(tmp_path):
    write_cub(tmp_path / "src")
    d = tmp_path / "d"
    d.mkdir()
    names = (tmp_path / "src" / "attributes.txt").read_bytes()
    tar_folder(tmp_path / "src" / "CUB_200_2011", d / "CUB_200_2011.tgz",
               extra={"attributes.txt": names})  # fmt: skip
    ds = load("cub200", data_dir=d, size=32)
    assert (d / "CUB_200_2011" / "images.txt").is_file() and (d / "attributes.txt").is_file()
    assert len(ds.concept_names) == 5 and not [p for p in d.iterdir() if p.name.startswith(".")]
    evil = tmp_path / "e"
    evil.mkdir()
    bad = tar_folder(tmp_path / "src" / "CUB_200_2011", evil / "CUB_200_2011.tgz",
                     extra={"../escaped.txt": b"x"})  # fmt: skip
    with pytest.raises(DataError, match=r"unsafe member path '\.\./escaped\.txt'"):
        extract("cub200", bad, "CUB_200_2011")
    assert not (tmp_path / "escaped.txt").exists() and files_under(evil) == ["CUB_200_2011.tgz"]


# --- Tiny ImageNet ----------------------------------------------------------------------------


def test_tiny_imagenet_tree_val_is_the_test_split(tmp_path):
    write_tiny(tmp_path)
    ds = load("tiny_imagenet", data_dir=tmp_path, size=32)
    assert ds.meta["wnids"] == ["n01", "n02", "n03"]  # sorted
    assert ds.class_names == ["thing n01", "thing n02", "thing n03"]
    assert ds.meta["split_sizes"] == {"train": 20, "val": 4, "test": 9}
    assert ds.input_shape == (3, 32, 32) and ds.X_test[0].shape == (3, 32, 32)
    # val_annotations lists n02 first (the wnids.txt order): its images are class 1
    assert ds.y_test.tolist() == [1, 1, 1, 0, 0, 0, 2, 2, 2]
    X = ds.X_train
    assert X.pad == 4 and X.train()[0].shape == (3, 32, 32)
    ann = tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_x.JPEG\tn77\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"val_annotations\.txt, line 10: expected"):
        load("tiny_imagenet", data_dir=tmp_path)


def test_tiny_imagenet_zip_archive(tmp_path):
    root = write_tiny(tmp_path / "src")
    d = tmp_path / "d"
    d.mkdir()
    with zipfile.ZipFile(d / "tiny-imagenet-200.zip", "w") as zf:
        for p in sorted(root.rglob("*")):
            zf.write(p, p.relative_to(root.parent).as_posix())
    ds = load("tiny_imagenet", data_dir=d)
    assert ds.input_shape == (3, 64, 64) and (d / "tiny-imagenet-200" / "wnids.txt").is_file()
    with zipfile.ZipFile(d / "evil.zip", "w") as zf:
        zf.writestr("tiny-imagenet-200/ok.txt", "fine")
        zf.writestr("/etc/evil.txt", "no")
    with pytest.raises(DataError, match=r"unsafe member path '/etc/evil\.txt'"):
        extract("tiny_imagenet", d / "evil.zip", "tiny-imagenet-200")


# --- registry, verify, fetch, CLI -------------------------------------------------------------


def test_registry_lists_kinds_and_the_cli_shows_them(capsys):
    kinds = {d["name"]: d["kind"] for d in available()}
    for name in ("mnist", "fashion_mnist", "cifar10", "cifar100", "cub200", "tiny_imagenet",
                 "digits_images", "shapes"):  # fmt: skip
        assert kinds[name] == "image"
    assert kinds["telco_churn"] == "table"
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["name", "kind", "task"]
    assert any(line.split()[:2] == ["cifar10", "image"] for line in out.splitlines())
    assert "cub200: size=224, resize=None, augment=True, concepts=True" in out


def _with_digests(monkeypatch, name: str, module, attr: str, files: dict[str, Path]) -> None:
    """Make ``name``'s official checksums those of the given local files (tests only)."""

    def fix(off: Official) -> Official:
        data = files[off.name].read_bytes()
        return dataclasses.replace(off, sha256=hashlib.sha256(data).hexdigest(),
                                   md5=hashlib.md5(data).hexdigest())  # fmt: skip

    offs = tuple(fix(o) for o in registered()[name].official)
    monkeypatch.setitem(registered(), name, dataclasses.replace(registered()[name], official=offs))
    monkeypatch.setattr(module, attr, offs if isinstance(getattr(module, attr), tuple) else offs[0])


def test_verify_reports_ok_mismatch_and_missing(tmp_path, monkeypatch, capsys):
    d = tmp_path / "d"
    d.mkdir()
    archive = tar_folder(write_cifar10(tmp_path / "src"), d / "cifar-10-binary.tar.gz")
    assert main(["datasets", "--verify", "cifar10", "--data-dir", str(d)]) == 2
    err = capsys.readouterr().err
    assert f"{archive}: sha256 " in err and "differs from the official c4a38c50" in err
    assert "Replace it with the official file" in err
    assert main(["datasets", "--verify", "cifar100", "--data-dir", str(d)]) == 2
    assert "'cifar-100-binary.tar.gz' not found (checksums are published" in capsys.readouterr().err
    _with_digests(monkeypatch, "cifar10", cifar, "CIFAR10_ARCHIVE",
                  {"cifar-10-binary.tar.gz": archive})  # fmt: skip
    assert main(["datasets", "--verify", "cifar10", "--data-dir", str(d)]) == 0
    assert f"{archive}: OK (sha256 " in capsys.readouterr().out
    assert verify("shapes") == ["shapes: generated or bundled; nothing to verify"]
    assert "no published checksum" in verify("abalone")[0]


class Served(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_fetch_without_network_writes_nothing(tmp_path, monkeypatch, capsys):
    def offline(url, timeout):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    d = tmp_path / "d"
    for name in ("cifar10", "mnist", "cub200"):
        assert main(["datasets", "--fetch", name, "--data-dir", str(d)]) == 2
        err = capsys.readouterr().err
        assert "could not download" in err and "network unreachable" in err
    assert not d.exists() or files_under(d) == []
    assert not d.exists() or list(d.iterdir()) == []  # not even an empty mnist/ folder


def test_fetch_checks_checksums_before_anything_appears(tmp_path, monkeypatch, capsys):
    src = tmp_path / "src"
    arrays_dir = src / "mnist"
    write_mnist(src)
    served = {p.name: p.read_bytes() for p in arrays_dir.iterdir()}
    urls = []

    def serve(url, timeout):
        urls.append(url)
        return Served(served[url.rsplit("/", 1)[-1]])

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    d = tmp_path / "d"
    assert main(["datasets", "--fetch", "mnist", "--data-dir", str(d)]) == 2  # real checksums
    err = capsys.readouterr().err
    assert "sha256" in err and "differs from the official 440fcabf" in err
    assert "nothing was written" in err and (not d.exists() or files_under(d) == [])
    _with_digests(monkeypatch, "mnist", mnist, "MNIST_FILES",
                  {f"mnist/{n}": arrays_dir / n for n in served})  # fmt: skip
    assert main(["datasets", "--fetch", "mnist", "--data-dir", str(d)]) == 0
    out = capsys.readouterr().out
    assert "mnist: images 1x28x28, task multiclass, train/val/test 68/12/20" in out
    assert files_under(d) == sorted(f"mnist/{n}" for n in served)
    assert urls[-1].startswith("https://ossci-datasets.s3.amazonaws.com/mnist/")
    assert main(["datasets", "--verify", "mnist", "--data-dir", str(d)]) == 0
    assert capsys.readouterr().out.count(": OK (sha256") == 4


def test_a_dataloader_worker_imports_only_what_the_dataset_needs(tmp_path):
    # A spawned worker unpickles the dataset: that imports htaf.data and the dataset's own
    # module, not every loader's dependencies (scikit-learn, pandas, scipy: seconds each).
    import pickle
    import subprocess
    import sys

    from PIL import Image

    path = tmp_path / "a.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    blob = tmp_path / "dataset.pkl"
    blob.write_bytes(pickle.dumps(ImageFiles([path], size=8)))
    code = (
        "import pickle, sys; X = pickle.loads(open(sys.argv[1], 'rb').read()); x = X[0]; "
        "print(tuple(x.shape), sorted(m for m in ('sklearn', 'pandas', 'scipy', "
        "'htaf.data.bundled', 'htaf.data.registry') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(blob)], capture_output=True,
                         text=True, check=True, timeout=120).stdout.strip()  # fmt: skip
    assert out == "(3, 8, 8) []", out
