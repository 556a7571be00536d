"""Event data: the binning rule, N-MNIST / SHD / DVS Gesture files written in their official
formats (good, truncated, bad header), the generated ``event_motion``, and the SNN fed spikes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from htaf.data import DataError, load
from htaf.data.events import bin_events

pytest.importorskip("tonic", reason="event files are read through Tonic (extra 'events')")
h5py = pytest.importorskip("h5py", reason="SHD is HDF5 (h5py comes with Tonic)")


# -- writers of the official formats --------------------------------------------------------------
def nmnist_bytes(events: list[tuple[int, int, int, int]]) -> bytes:
    """N-MNIST's 40-bit events (x, y, t µs, p): x, y, then p in bit 23 and t in bits 22-0.
    A time stamp past 2^13 µs steps is written as it is: Tonic adds 2^13 per overflow event
    (y = 240), so the writer inserts one overflow event per 2^13 µs crossed, as the camera did."""
    out = bytearray()
    base = 0
    for x, y, t, p in events:
        while t - base >= 1 << 13:
            base += 1 << 13
            out += bytes([0, 240, 0, 0, 0])
        ts = t - base
        out += bytes([x, y, (p << 7) | ((ts >> 16) & 0x7F), (ts >> 8) & 0xFF, ts & 0xFF])
    return bytes(out)


def write_nmnist(root: Path, samples: dict[str, list[tuple[int, list]]]) -> None:
    """``root/nmnist/<Train|Test>/<digit>/<id>.bin`` as in the official archives."""
    for split, items in samples.items():
        for i, (digit, events) in enumerate(items):
            f = root / "nmnist" / split / str(digit) / f"{i:05d}.bin"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(nmnist_bytes(events))


def write_shd(path: Path, times: list[np.ndarray], units: list[np.ndarray], labels: list[int]):
    """An SHD file: variable-length ``spikes/times`` (s, float16 as published), ``spikes/units``
    (uint16) and ``labels`` (uint16)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        g = f.create_group("spikes")
        t = g.create_dataset("times", (len(times),), dtype=h5py.vlen_dtype(np.float16))
        u = g.create_dataset("units", (len(units),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (a, b) in enumerate(zip(times, units, strict=True)):
            t[i], u[i] = a.astype(np.float16), b.astype(np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))


def aedat31(events: list[tuple[int, int, int, int]], per_packet: int = 3) -> bytes:
    """An AEDAT 3.1 file of DVS polarity events (x, y, t µs, p): text header, then packets of a
    28-byte header and 8-byte events (address x<<17 | y<<2 | p<<1 | valid, time stamp)."""
    head = (b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n"
            b"#Start-Time: 2017-01-01 00:00:00 (TZ+0000)\r\n#!END-HEADER\r\n")  # fmt: skip
    body = bytearray()
    for k in range(0, len(events), per_packet):
        chunk = events[k : k + per_packet]
        body += struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, len(chunk), len(chunk), len(chunk))
        for x, y, t, p in chunk:
            body += struct.pack("<Ii", (x << 17) | (y << 2) | (p << 1) | 1, t)
    return head + bytes(body)


def write_dvs(root: Path, recordings: dict[str, tuple[str, list, list]]) -> Path:
    """``root/dvs_gesture/DvsGesture/``: ``<name>.aedat``, ``<name>_labels.csv`` and the two
    trial lists, as in the official archive. ``recordings``: name -> (split, events, labels)."""
    folder = root / "dvs_gesture" / "DvsGesture"
    folder.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for name, (split, events, labels) in recordings.items():
        (folder / f"{name}.aedat").write_bytes(aedat31(events))
        rows = "".join(f"{c},{s},{e}\r\n" for c, s, e in labels)
        (folder / f"{name}_labels.csv").write_text("class,startTime_usec,endTime_usec\r\n" + rows)
        lists[split].append(f"{name}.aedat")
    for split, names in lists.items():
        (folder / f"trials_to_{split}.txt").write_text("".join(n + "\r\n" for n in names))
    return folder


# -- the binning rule against an independent reference --------------------------------------------
def reference_bins(ev, sensor, T, bin_us, d, polarity, spikes):
    """The module doc's rule event by event, in float64 and plain Python."""
    W, H, P = sensor
    length = max(t for _, _, t, _ in ev) + 1
    span = T * bin_us if bin_us is not None else length
    C = 1 if polarity == "merge" else P
    out = np.zeros((T, C, -(-H // d), -(-W // d)))
    for x, y, t, p in ev:
        k = int(np.floor(t * T / span))
        if 0 <= k < T:
            out[k, 0 if polarity == "merge" else p, y // d, x // d] += 1
    return np.minimum(out, 1) if spikes else out


@pytest.mark.parametrize("T,bin_us,d,polarity,spikes", [
    (5, None, 1, "both", False), (7, 300.0, 2, "merge", False), (3, None, 3, "both", True),
    (1, None, 1, "merge", True), (4, 1000.0, 1, "both", False),
])  # fmt: skip
def test_binning_matches_reference(T, bin_us, d, polarity, spikes):
    rng = np.random.default_rng(T)
    n = 400
    ev = [(int(a), int(b), int(c), int(e)) for a, b, c, e in zip(
        rng.integers(0, 10, n), rng.integers(0, 7, n), rng.integers(0, 3000, n),
        rng.integers(0, 2, n), strict=True)]  # fmt: skip
    ev.append((9, 6, 2999, 1))  # the last microsecond lands in the last bin
    a = np.array(ev)
    got = bin_events(a[:, 0], a[:, 1], a[:, 2], a[:, 3], (10, 7, 2), n_time_bins=T, bin_us=bin_us,
                     downsample=d, polarity=polarity, spikes=spikes)  # fmt: skip
    want = reference_bins(ev, (10, 7, 2), T, bin_us, d, polarity, spikes)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    if not spikes and bin_us is None:
        assert got.sum() == len(ev)  # every event lands in exactly one bin


@pytest.mark.parametrize("bad", [0, -5.0, float("nan")])
def test_time_bin_not_positive_is_named(bad):
    with pytest.raises(DataError, match="'bin_us'"):
        load("event_motion", n=40, bin_us=bad)


def test_time_bin_longer_than_recording_is_named():
    with pytest.raises(DataError, match=r"'bin_us' = 1e\+06 µs is longer than the recording"):
        load("event_motion", n=40, bin_us=1e6)
    with pytest.raises(DataError, match="'n_time_bins'"):
        load("event_motion", n=40, n_time_bins=0)
    with pytest.raises(DataError, match="'spikes' must be true or false, not 'no'"):
        load("event_motion", n=40, spikes="no")
    with pytest.raises(DataError, match="'polarity' must be one of"):
        load("event_motion", n=40, polarity="on")
    with pytest.raises(DataError, match="'downsample' must be >= 1"):
        load("event_motion", n=40, downsample=0)


# -- N-MNIST --------------------------------------------------------------------------------------
NMNIST = {
    "Train": [(3, [(0, 0, 10, 1), (33, 33, 9000, 0), (5, 7, 20000, 1)]),
              (3, [(1, 2, 0, 0), (1, 2, 29999, 1)]),
              (7, [(10, 11, 100, 1), (12, 13, 5000, 0)]),
              (7, [(4, 4, 50, 0), (4, 5, 16000, 1)])] * 2,
    "Test": [(3, [(2, 2, 0, 1), (3, 3, 999, 0)]), (7, [(6, 6, 10, 1), (6, 6, 8200, 1)])],
}  # fmt: skip


def test_nmnist_reads_the_official_layout(tmp_path):
    write_nmnist(tmp_path, NMNIST)
    ds = load("nmnist", data_dir=tmp_path, val_size=0.25, n_time_bins=3, spikes=False)
    assert ds.kind == "sequence" and ds.input_shape == (3, 2, 34, 34)
    assert len(ds.y_test) == 2 and sorted(ds.y_test.tolist()) == [3, 7]
    assert sorted(np.concatenate([ds.y_train, ds.y_val]).tolist()) == [3] * 4 + [7] * 4
    # the first test sample (digit 3): ON at (2, 2) at t=0 -> bin 0; OFF at (3, 3), last µs -> bin 2
    i = int(np.flatnonzero(ds.y_test == 3)[0])
    x = ds.X_test[i]
    assert x.sum() == 2 and x[0, 1, 2, 2] == 1 and x[2, 0, 3, 3] == 1
    # through the 2^13 µs overflow events: t = 8200 of 8201 µs lands in the last of 3 bins
    j = int(np.flatnonzero(ds.y_test == 7)[0])
    assert ds.X_test[j][0, 1, 6, 6] == 1 and ds.X_test[j][2, 1, 6, 6] == 1


def test_nmnist_reads_the_zip_in_place(tmp_path):
    import zipfile

    write_nmnist(tmp_path / "raw", NMNIST)
    for split in ("Train", "Test"):
        (tmp_path / "nmnist").mkdir(exist_ok=True)
        with zipfile.ZipFile(tmp_path / "nmnist" / f"{split}.zip", "w") as zf:
            for f in sorted((tmp_path / "raw" / "nmnist" / split).rglob("*.bin")):
                zf.write(f, f"{split}/{f.parent.name}/{f.name}")
    folder = load("nmnist", data_dir=tmp_path / "raw", n_time_bins=4, val_size=0.25)
    zipped = load("nmnist", data_dir=tmp_path, n_time_bins=4, val_size=0.25)
    assert np.array_equal(folder.X_test, zipped.X_test)
    assert np.array_equal(folder.X_train, zipped.X_train)
    assert sorted(p.name for p in (tmp_path / "nmnist").iterdir()) == ["Test.zip", "Train.zip"]


def test_nmnist_fetch_checks_the_checksum_then_reads_the_zips(tmp_path, monkeypatch, capsys):
    import dataclasses
    import hashlib
    import io
    import urllib.request
    import zipfile

    from htaf.data import neuromorphic
    from htaf.data.registry import REGISTRY

    write_nmnist(tmp_path / "raw", NMNIST)
    served = {}
    for split in ("Train", "Test"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for f in sorted((tmp_path / "raw" / "nmnist" / split).rglob("*.bin")):
                zf.write(f, f"{split}/{f.parent.name}/{f.name}")
        served[split] = buf.getvalue()

    class Served(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def serve(url, timeout):
        return Served(served["Train" if "39c25547" in url else "Test"])

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    d = tmp_path / "d"
    assert run_cli("datasets", "--fetch", "nmnist", "--data-dir", str(d)) == 2  # real md5s
    err = capsys.readouterr().err
    assert "md5" in err and "differs from the official 20959b8e" in err
    assert not list(d.rglob("*.zip"))
    offs = tuple(
        dataclasses.replace(o, md5=hashlib.md5(served[o.name[7:-4]]).hexdigest())
        for o in neuromorphic.NMNIST_FILES
    )
    monkeypatch.setattr(neuromorphic, "NMNIST_FILES", offs)
    monkeypatch.setitem(REGISTRY, "nmnist", dataclasses.replace(REGISTRY["nmnist"], official=offs))
    assert run_cli("datasets", "--fetch", "nmnist", "--data-dir", str(d)) == 0
    assert sorted(p.name for p in (d / "nmnist").iterdir()) == ["Test.zip", "Train.zip"]
    assert run_cli("datasets", "--verify", "nmnist", "--data-dir", str(d)) == 0
    assert capsys.readouterr().out.count(": OK (md5") == 2


def run_cli(*args: str) -> int:
    from htaf.cli import main

    return main(list(args))


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[:-2], "truncated: .* not a whole number of 5-byte events"),
    (lambda b: bytes([200]) + b[1:], "outside the 34x34 sensor"),
    (lambda b: b"", "empty file"),
])  # fmt: skip
def test_nmnist_damaged_file_exit_2_names_it(tmp_path, capsys, damage, message):
    write_nmnist(tmp_path, NMNIST)
    bad = tmp_path / "nmnist" / "Test" / "7" / "00001.bin"
    bad.write_bytes(damage(bad.read_bytes()))
    out = tmp_path / "runs"
    code = run_cli("compare", "--family", "snn", "--dataset", "nmnist", "--data-dir",
                   str(tmp_path), "--out", str(out), "--seeds", "1", "--epochs", "1")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err
    import re

    assert re.search(message, err), err
    assert not out.exists()


@pytest.mark.parametrize("option,message", [
    ("bin_us=0", "option 'bin_us' (time bin) must be > 0"),
    ("bin_us=-3.5", "option 'bin_us' (time bin) must be > 0"),
    ("bin_us=40000.0", "00000.bin: option 'bin_us' = 40000 µs is longer than the recording"),
])  # fmt: skip
def test_nmnist_bad_time_bin_exit_2_names_the_option(tmp_path, capsys, option, message):
    write_nmnist(tmp_path, NMNIST)
    out = tmp_path / "runs"
    code = run_cli("compare", "--family", "snn", "--dataset", "nmnist", "--data-dir",
                   str(tmp_path), "--out", str(out), "--data-option", option)  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not out.exists()


# -- SHD ------------------------------------------------------------------------------------------
def shd_samples(n: int, seed: int):
    rng = np.random.default_rng(seed)
    times, units = [], []
    for _ in range(n):
        m = int(rng.integers(3, 30))
        times.append(np.sort(rng.uniform(0, 0.9, m)))
        units.append(rng.integers(0, 700, m))
    times[0][-1] = 0.9  # every recording longer than the 10 ms bins the tests use
    return times, units, [int(v) for v in rng.permutation(np.arange(n) % 20)]  # each class twice


def test_shd_reads_the_official_groups(tmp_path):
    for split, n in (("train", 40), ("test", 6)):
        write_shd(tmp_path / "shd" / f"shd_{split}.h5", *shd_samples(n, len(split)))
    ds = load("shd", data_dir=tmp_path, n_time_bins=20, bin_us=10_000.0, spikes=False,
              val_size=0)  # fmt: skip
    assert ds.input_shape == (20, 700) and ds.n_classes == 20
    times, units, labels = shd_samples(6, 4)
    assert ds.y_test.tolist() == labels
    for i in range(6):  # events at or after 200 ms fall outside 20 bins of 10 ms
        t16 = np.asarray(times[i], dtype=np.float16).astype(np.float64)
        k = np.floor(np.rint(t16 * 1e6) / 10_000).astype(int)
        want = np.zeros((20, 700))
        np.add.at(want, (k[k < 20], units[i][k < 20]), 1)
        assert np.array_equal(ds.X_test[i], want)


def test_shd_reads_the_distributed_archives(tmp_path):
    import gzip
    import zipfile

    plain, packed = tmp_path / "plain", tmp_path / "packed"
    for split, n in (("train", 40), ("test", 6)):
        write_shd(plain / "shd" / f"shd_{split}.h5", *shd_samples(n, len(split)))
        raw = (plain / "shd" / f"shd_{split}.h5").read_bytes()
        (packed / "shd").mkdir(parents=True, exist_ok=True)
        if split == "train":
            with zipfile.ZipFile(packed / "shd" / "shd_train.h5.zip", "w") as zf:
                zf.writestr("shd_train.h5", raw)
        else:
            (packed / "shd" / "shd_test.h5.gz").write_bytes(gzip.compress(raw))
    a = load("shd", data_dir=plain, n_time_bins=10, bin_us=50_000.0, val_size=0)
    b = load("shd", data_dir=packed, n_time_bins=10, bin_us=50_000.0, val_size=0)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.X_test, b.X_test)
    assert a.X_train.sum() > 0
    with pytest.raises(DataError, match=r"neither 'shd/shd_train.h5' nor 'shd/shd_train.h5.zip'"):
        load("shd", data_dir=tmp_path / "empty")


@pytest.mark.parametrize("damage,message", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "HDF5"),
    (lambda p: p.write_bytes(b"NOT-HDF5" + p.read_bytes()[8:]), "HDF5"),
])  # fmt: skip
def test_shd_truncated_or_bad_header_exit_2(tmp_path, capsys, damage, message):
    for split, n in (("train", 40), ("test", 5)):
        write_shd(tmp_path / "shd" / f"shd_{split}.h5", *shd_samples(n, len(split)))
    bad = tmp_path / "shd" / "shd_test.h5"
    damage(bad)
    out = tmp_path / "runs"
    code = run_cli("compare", "--family", "snn", "--dataset", "shd", "--data-dir",
                   str(tmp_path), "--out", str(out), "--seeds", "1")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and message in err
    assert not out.exists()


def test_shd_missing_group_is_named(tmp_path):
    path = tmp_path / "shd" / "shd_train.h5"
    path.parent.mkdir()
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=np.zeros(3, dtype=np.uint16))
    with pytest.raises(DataError, match=r"shd_train.h5: no dataset 'spikes/times'"):
        load("shd", data_dir=tmp_path)


# -- DVS Gesture ----------------------------------------------------------------------------------
def dvs_recordings():
    ev_a = [
        (0, 0, 1000, 1),
        (127, 127, 1500, 0),
        (64, 32, 2999, 1),  # segment 1: 1000-3000
        (5, 5, 3500, 1),
        (8, 9, 4000, 0),
        (100, 3, 5999, 0),
    ]  # segment 2: 3000-6000
    ev_b = [(10, 20, 100, 0), (30, 40, 600, 1), (50, 60, 900, 1)]
    return {
        "user01_fluorescent": ("train", ev_a, [(1, 1000, 3000), (11, 3000, 6000)]),
        "user02_led": ("train", ev_b, [(4, 100, 1000)]),
        "user03_natural": ("test", ev_b, [(4, 100, 1000)]),
    }


def test_dvs_gesture_reads_aedat31_and_labels(tmp_path):
    write_dvs(tmp_path, dvs_recordings())
    ds = load("dvs_gesture", data_dir=tmp_path, n_time_bins=2, downsample=4, spikes=False,
              val_size=0)  # fmt: skip
    assert ds.input_shape == (2, 2, 32, 32)
    assert sorted(ds.y_train.tolist()) == [0, 3, 10] and ds.y_test.tolist() == [3]
    seg = ds.X_train[int(np.flatnonzero(ds.y_train == 0)[0])]  # class 1, 1000-3000 µs: bins of 1 ms
    assert seg.sum() == 3 and seg[0, 1, 0, 0] == 1 and seg[0, 0, 31, 31] == 1
    assert seg[1, 1, 8, 16] == 1  # (x 64, y 32) pooled by 4, at 1999 µs into the segment
    other = ds.X_train[int(np.flatnonzero(ds.y_train == 10)[0])]
    assert other.sum() == 3 and other[0, 1, 1, 1] == 1 and other[1, 0, 0, 25] == 1
    # the test recording: 100-1000 µs, events at 0, 500 and 800 µs into it
    assert ds.X_test[0][0, 0, 5, 2] == 1 and ds.X_test[0][1, 1, 10, 7] == 1


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[:-5], "truncated"),
    (lambda b: b"#!AER-DAT2.0\r\n" + b[14:], "bad header"),
])  # fmt: skip
def test_dvs_truncated_or_bad_header_exit_2(tmp_path, capsys, damage, message):
    folder = write_dvs(tmp_path, dvs_recordings())
    bad = folder / "user03_natural.aedat"
    bad.write_bytes(damage(bad.read_bytes()))
    out = tmp_path / "runs"
    code = run_cli("compare", "--family", "snn", "--dataset", "dvs_gesture", "--data-dir",
                   str(tmp_path), "--out", str(out), "--seeds", "1")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and message in err
    assert not out.exists()


def test_dvs_bad_label_row_is_named(tmp_path):
    folder = write_dvs(tmp_path, dvs_recordings())
    (folder / "user02_led_labels.csv").write_text(
        "class,startTime_usec,endTime_usec\r\n12,100,1000\r\n"
    )
    with pytest.raises(DataError, match=r"user02_led_labels.csv: row 2: class 12"):
        load("dvs_gesture", data_dir=tmp_path)


# -- event_motion: generated, needs time ----------------------------------------------------------
def test_event_motion_is_deterministic_and_needs_time():
    a = load("event_motion", n=80, noise=0.0, spikes=False)
    b = load("event_motion", n=80, noise=0.0, spikes=False)
    assert np.array_equal(a.X_train, b.X_train) and a.input_shape == (12, 2, 16, 16)
    assert not np.array_equal(a.X_train, load("event_motion", n=80, noise=0.0, seed=5).X_train)
    X = np.concatenate([a.X_train, a.X_val, a.X_test])
    y = np.concatenate([a.y_train, a.y_val, a.y_test])
    total = X.sum(1)  # (n, 2, 16, 16): summed over time
    # every pixel of the path fired once ON and once OFF, whichever the direction
    assert np.array_equal(total[:, 0], total[:, 1]) and total.sum() > 0
    # ...and the order gives the direction: the ON events' centre moves that way in time
    axis = {0: (0, 1), 1: (0, -1), 2: (1, 1), 3: (1, -1)}  # class -> (axis summed, sign)
    coord = np.arange(16)
    for x, c in zip(X, y, strict=True):
        on = x[:, 1]  # (T, y, x)
        steps = np.flatnonzero(on.sum((1, 2)))
        summed, sign = axis[int(c)]
        centre = [(on[k].sum(summed) * coord).sum() / on[k].sum() for k in steps[[0, -1]]]
        assert sign * (centre[1] - centre[0]) > 0


# -- the SNN family takes the spike trains as they are --------------------------------------------
def test_snn_runs_event_data_without_encoder():
    from htaf.config import ConfigError
    from htaf.families import data_spec
    from htaf.families.snn import SNNOptions, build

    ds = load("event_motion", n=40)
    spec = data_spec(ds)
    x = torch.from_numpy(ds.X_train[:4])
    for arch in ("mlp", "cnn"):
        net = build(SNNOptions(arch=arch, widths=(16,), channels=(4,)), spec, "htaf", {})
        seen: dict[str, torch.Tensor] = {}
        net._watch(lambda name, s, m, seen=seen: seen.setdefault(name, s))
        with torch.no_grad():
            assert net(x).shape == (4, 4)
        net._watch(None)
        first = seen["layer1"]
        assert first.shape[0] == 12  # the data's 12 bins are the time steps
    # no encoder: the first layer's input at step t is the data's bin t
    net = build(SNNOptions(widths=(8,)), spec, "atan", {})
    train = net.encode(x)
    assert torch.equal(train.values, x.transpose(0, 1).flatten(2))
    ref = build(SNNOptions(widths=(8,)), spec, "relu", {})  # time average, run once
    assert torch.allclose(ref.encode(x).values, x.mean(1).flatten(1))
    with pytest.raises(ValueError, match=r"\(B, 12, 2, 16, 16\)"):
        net(x[:, :5])
    with pytest.raises(ConfigError, match="checkpoint_steps"):
        build(SNNOptions(checkpoint_steps=4), spec, "htaf", {})


@pytest.mark.parametrize("neuron", ["synaptic", "alif", "rlif", "plif", "if"])
def test_event_input_reaches_every_neuron(neuron):
    from htaf.families import data_spec
    from htaf.families.snn import SNNOptions, build

    ds = load("event_motion", n=40)
    x = torch.from_numpy(ds.X_train[:3])
    net = build(SNNOptions(neuron=neuron, widths=(8,)), data_spec(ds), "htaf", {})
    out = net(x)
    out.sum().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert out.shape == (3, 4) and torch.isfinite(out).all()
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_compare_runs_on_event_motion(tmp_path, capsys):
    out = tmp_path / "runs"
    code = run_cli("compare", "--family", "snn", "--dataset", "event_motion", "--data-option",
                   "n=80", "--estimators", "htaf,atan", "--seeds", "1", "--epochs", "1",
                   "--widths", "16", "--out", str(out), "--no-progress")  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "event_motion" in printed and "htaf" in printed
    assert list(out.glob("*/summary.json"))


def test_tonic_core_needs_no_torchvision():
    import subprocess
    import sys

    code = "import sys, tonic, tonic.io; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
