"""N-MNIST, SHD and DVS Gesture from their official files, read through Tonic (extra ``events``).

Each recording's events are binned by :func:`htaf.data.events.bin_events` (the rule is in
``htaf.data.events``; the options ``n_time_bins``, ``bin_us``, ``downsample``, ``polarity`` and
``spikes`` are data options). The sets are ``kind="sequence"``, samples time first.

* ``nmnist`` (Orchard et al. 2015): ``nmnist/Train/<digit>/<id>.bin`` and ``nmnist/Test/...``,
  the official ``Train.zip``/``Test.zip`` unpacked, or the zips themselves (read in place).
  Each ``.bin`` is a list of 40-bit events: byte 0 x, byte 1 y, then bit 23 the polarity and
  bits 22-0 the time stamp in µs; ``y = 240`` marks a time-stamp overflow (+2^13 µs).
  Decoded with ``tonic.io.read_mnist_file``. Sensor 34 × 34, 2 polarities;
  samples ``(T, 2, 34, 34)`` (or ``(T, 1, ...)`` merged, ``34/d`` pooled).
* ``shd`` (Cramer et al. 2020, Spiking Heidelberg Digits): ``shd/shd_train.h5`` and
  ``shd/shd_test.h5`` (or the distributed ``.h5.zip``/``.h5.gz``, read in memory), HDF5 with
  ``spikes/times`` (seconds), ``spikes/units`` (channel 0-699, one array per sample) and
  ``labels``; read with h5py (Tonic's own dependency; Tonic has no reader function for it).
  20 classes (digits 0-9 in English and German); samples ``(T, 700/d)``.
* ``dvs_gesture`` (Amir et al. 2017, IBM): ``dvs_gesture/DvsGesture/`` as unpacked from the
  official ``DvsGesture.tar.gz``: ``userNN_<lighting>.aedat`` (AEDAT 3.1), beside each its
  ``userNN_<lighting>_labels.csv`` (``class,startTime_usec,endTime_usec``, classes 1-11), and
  ``trials_to_train.txt``/``trials_to_test.txt`` listing the ``.aedat`` files of each split.
  Every labelled segment is a sample, its times relative to the segment's start and its
  length the segment's. The AEDAT packets are checked here (header, packet sizes: a truncated
  file is named), the events read by Tonic's AEDAT
  packet reader (:func:`read_aedat31_events`). Sensor 128 × 128;
  samples ``(T, 2, 128/d, 128/d)``, ``downsample=4`` (32 × 32) by default.

The binned sets are held in memory as float32: N-MNIST at the defaults is 70000 × 10 × 2 ×
34 × 34 values, 6.5 GB (``downsample=2``: 1.6 GB); SHD at the defaults 2.9 GB.

Neither format says how long it is: an N-MNIST file cut at an event boundary, or an AEDAT file
cut at a packet boundary, reads as a shorter recording. Only the archives' checksums
(``htaf datasets --verify``) catch that; every other cut is named as truncated.

Errors (a missing, truncated or damaged file, a time bin ``<= 0`` or longer than a recording)
are ``DataError``\\ s naming the file and, where it applies, the option.
"""

from __future__ import annotations

import csv
import gzip
import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .arrays import Part, build_dataset
from .dataset import DataError, Dataset
from .events import bin_events, binning_rule, check_binning, check_spikes
from .files import search_dirs
from .official import Official, locate, where_to_put
from .registry import Ctx, register

NMNIST_SENSOR = (34, 34, 2)
NMNIST_OVERFLOW_Y = 240
TONIC_MD5 = "MD5 as pinned by Tonic 1.7 (tonic/datasets/{})"
NMNIST_URL = "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
NMNIST_FILES = (
    Official("nmnist/Train.zip", urls=(NMNIST_URL + "39c25547-014b-4137-a934-9d29fa53c7a0/"
             "file_downloaded",), md5="20959b8e626244a1b502305a9e6e2031",
             checksum_source=TONIC_MD5.format("nmnist.py"), also=("nmnist/train.zip",)),
    Official("nmnist/Test.zip", urls=(NMNIST_URL + "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/"
             "file_downloaded",), md5="69ca8762b2fe404d9b9bad1103e97832",
             checksum_source=TONIC_MD5.format("nmnist.py"), also=("nmnist/test.zip",)),
)  # fmt: skip
SHD_UNITS = 700
SHD_URL = "https://zenkelab.org/datasets/"
SHD_FILES = (
    Official("shd/shd_train.h5.zip", urls=(SHD_URL + "shd_train.h5.zip",),
             md5="f3252aeb598ac776c1b526422d90eecb", checksum_source=TONIC_MD5.format("hsd.py")),
    Official("shd/shd_test.h5.zip", urls=(SHD_URL + "shd_test.h5.zip",),
             md5="1503a5064faa34311c398fb0a1ed0a6f", checksum_source=TONIC_MD5.format("hsd.py")),
)  # fmt: skip
SHD_CLASSES = [f"{lang}-{d}" for lang in ("english", "german") for d in range(10)]
DVS_SENSOR = (128, 128, 2)
DVS_FOLDER = "dvs_gesture/DvsGesture"
DVS_CLASSES = ["hand_clap", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
               "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
               "arm_roll", "air_drums", "air_guitar", "other_gestures"]  # fmt: skip
AEDAT_PACKET_HEADER = 28
AEDAT_POLARITY = 1  # the event type of DVS polarity events
AEDAT_POLARITY_SIZE = 8  # bytes: uint32 address, int32 time stamp


def _tonic() -> Any:
    try:
        import tonic.io
    except ImportError as e:
        raise DataError(
            "reading event files needs Tonic, the optional extra 'events': "
            "pip install 'htaf[events]'"
        ) from e
    return tonic.io


class Binning:
    """The binning options of one load, checked once; ``__call__`` bins one recording."""

    def __init__(self, what: str, sensor: tuple[int, int, int], **options: Any):
        T, bin_us, d, pol = check_binning(
            what, options["n_time_bins"], options["bin_us"], options["downsample"],
            options["polarity"],
        )  # fmt: skip
        self.sensor, self.spikes = sensor, check_spikes(what, options["spikes"])
        self.kw = {"n_time_bins": T, "bin_us": bin_us, "downsample": d, "polarity": pol,
                   "spikes": self.spikes}  # fmt: skip
        self.rule = binning_rule(T, bin_us, d, pol, self.spikes)

    def __call__(self, ev: np.ndarray, where: str, duration_us: float | None = None) -> np.ndarray:
        return bin_events(
            ev["x"], ev["y"], ev["t"], ev["p"], self.sensor, duration_us=duration_us,
            where=where, **self.kw,
        )  # fmt: skip


def _dataset(
    name: str, parts: tuple[Part, Part], classes: list[str], ctx: Ctx, meta: dict
) -> Dataset:
    for split, part in zip(("train", "test"), parts, strict=True):
        if not len(part.y):
            raise DataError(f"dataset {name!r}: the {split} split holds no recordings")
    return build_dataset(
        name, "sequence", parts[0], parts[1], class_names=classes, seed=ctx.seed,
        val_size=ctx.val_size, test_size=ctx.test_size, normalize=None, meta=meta,
    )  # fmt: skip


# -- N-MNIST --------------------------------------------------------------------------------------
def read_nmnist(raw: bytes, where: str) -> np.ndarray:
    """The events of one N-MNIST ``.bin`` file's bytes (Tonic's structured x, y, t, p)."""
    if not raw:
        raise DataError(f"{where}: empty file; an N-MNIST recording holds 5-byte events")
    if len(raw) % 5:
        raise DataError(
            f"{where}: truncated: {len(raw)} bytes is not a whole number of 5-byte events "
            f"(the last event has {len(raw) % 5} bytes). Replace it with the official file"
        )
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 5)
    bad = np.flatnonzero((b[:, 1] != NMNIST_OVERFLOW_Y) & ((b[:, 0] >= 34) | (b[:, 1] >= 34)))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{where}: event {i} (byte {5 * i}) has address x={b[i, 0]}, y={b[i, 1]}, outside "
            "the 34x34 sensor: not an N-MNIST event file, or a damaged one"
        )
    tio = _tonic()
    dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
    return tio.read_mnist_file(io.BytesIO(raw), dtype=dtype, is_stream=True)


def _nmnist_members(ctx: Ctx, split: str) -> Iterator[tuple[str, int, Callable[[], bytes]]]:
    """(where, digit, read) for every ``.bin`` of a split, from the folder or the zip (which
    ``download`` fetches when neither is found)."""
    off = NMNIST_FILES[0 if split == "Train" else 1]
    found = locate("nmnist", off, ctx.data_dir, ctx.download, folder=f"nmnist/{split}")
    if found.is_dir():
        files = sorted(found.glob("[0-9]/*.bin"))
        if not files:
            raise DataError(f"{found}: holds no <digit>/<id>.bin files; is it the official "
                            f"N-MNIST {split} folder?")  # fmt: skip
        for f in files:
            yield str(f), int(f.parent.name), f.read_bytes
        return
    try:
        with zipfile.ZipFile(found) as zf:
            names = sorted(n for n in zf.namelist() if n.endswith(".bin") and f"{split}/" in n)
            for n in names:
                digit = Path(n).parent.name
                if digit.isdigit():
                    yield f"{found}:{n}", int(digit), lambda n=n, zf=zf: zf.read(n)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise DataError(f"{found}: cannot read the archive ({e}); it is truncated or corrupt. "
                        "Replace it with the official file") from e  # fmt: skip


def _nmnist_split(ctx: Ctx, split: str, binning: Binning) -> Part:
    X, y = [], []
    for where, digit, read in _nmnist_members(ctx, split):
        X.append(binning(read_nmnist(read(), where), where))
        y.append(digit)
    return Part(_stack(X, binning), np.asarray(y, dtype=np.int64))


def _stack(X: list[np.ndarray], binning: Binning) -> np.ndarray:
    if not X:
        return np.zeros((0, binning.kw["n_time_bins"], 1), dtype=np.float32)
    return np.stack(X)


@register(
    "nmnist",
    kind="sequence",
    task="multiclass",
    description="N-MNIST: MNIST digits seen by a moving event camera, 34x34 ON/OFF events, "
    "60000 train / 10000 test, binned to (T, 2, 34, 34)",
    source="https://www.garrickorchard.com/datasets/n-mnist",
    files=("nmnist/{Train,Test}/<digit>/<id>.bin (or nmnist/{Train,Test}.zip)",),
    official=NMNIST_FILES,
)
def nmnist(
    ctx: Ctx,
    *,
    n_time_bins: int = 10,
    bin_us: float | None = None,
    downsample: int = 1,
    polarity: str = "both",
    spikes: bool = True,
) -> Dataset:
    """N-MNIST binned by ``htaf.data.events``' rule (default: 10 equal bins per recording)."""
    binning = Binning("nmnist", NMNIST_SENSOR, n_time_bins=n_time_bins, bin_us=bin_us,
                      downsample=downsample, polarity=polarity, spikes=spikes)  # fmt: skip
    parts = (_nmnist_split(ctx, "Train", binning), _nmnist_split(ctx, "Test", binning))
    meta = {"source": "N-MNIST (Orchard et al. 2015)", "file": None,
            "files": [f.name for f in NMNIST_FILES], "binning": binning.rule}  # fmt: skip
    return _dataset("nmnist", parts, [str(d) for d in range(10)], ctx, meta)


# -- SHD ------------------------------------------------------------------------------------------
def _shd_file(ctx: Ctx, split: str) -> tuple[str, Any]:
    """(where, an h5py-openable path or BytesIO) of ``shd_<split>.h5`` or its archive."""
    dirs = search_dirs(ctx.data_dir)
    plain = Official(f"shd/shd_{split}.h5").find(dirs)
    if plain is not None:
        return str(plain), plain
    off = SHD_FILES[0 if split == "train" else 1]
    found = Official(f"shd/shd_{split}.h5.gz").find(dirs) or off.find(dirs)
    if found is None and not ctx.download:
        raise DataError(
            f"dataset 'shd': neither 'shd/shd_{split}.h5' nor {off.name!r} (or .h5.gz) found. "
            + where_to_put("shd", off, dirs)
        )
    if found is None:
        found = locate("shd", off, ctx.data_dir, ctx.download)
    try:
        if found.suffix == ".gz":
            return str(found), io.BytesIO(gzip.decompress(found.read_bytes()))
        with zipfile.ZipFile(found) as zf:
            inner = [n for n in zf.namelist() if n.endswith(".h5")]
            if not inner:
                raise DataError(f"{found}: holds no .h5 file; is it the official archive?")
            return f"{found}:{inner[0]}", io.BytesIO(zf.read(inner[0]))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise DataError(f"{found}: cannot read the archive ({e}); it is truncated or corrupt. "
                        "Replace it with the official file") from e  # fmt: skip


def read_shd(source: Any, where: str) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(times in µs per sample, units per sample, labels) of an SHD HDF5 file, checked."""
    import h5py

    try:
        f = h5py.File(source, "r")
    except OSError as e:
        raise DataError(f"{where}: not a readable HDF5 file ({e}); the file is truncated or "
                        "not the official SHD file") from e  # fmt: skip
    with f:
        for key in ("spikes/times", "spikes/units", "labels"):
            if key not in f:
                raise DataError(f"{where}: no dataset {key!r}; an SHD file holds spikes/times, "
                                "spikes/units and labels")  # fmt: skip
        try:
            times, units = list(f["spikes/times"][()]), list(f["spikes/units"][()])
            labels = np.asarray(f["labels"][()], dtype=np.int64)
        except (OSError, ValueError, TypeError) as e:
            raise DataError(f"{where}: cannot read its arrays ({e}); the file is truncated or "
                            "damaged") from e  # fmt: skip
    if not len(times) == len(units) == len(labels):
        raise DataError(f"{where}: {len(times)} spike-time arrays, {len(units)} unit arrays and "
                        f"{len(labels)} labels; they must match")  # fmt: skip
    out_t = []
    for i, (t, u) in enumerate(zip(times, units, strict=True)):
        t = np.asarray(t, dtype=np.float64)
        u = np.asarray(u)
        if t.shape != u.shape:
            raise DataError(f"{where}: sample {i} has {t.size} spike times and {u.size} units")
        if t.size and (not np.isfinite(t).all() or t.min() < 0):
            raise DataError(f"{where}: sample {i} has a negative or non-finite spike time")
        if u.size and (u.min() < 0 or u.max() >= SHD_UNITS):
            raise DataError(f"{where}: sample {i} has unit {int(u.max())} outside 0..699")
        out_t.append(np.rint(t * 1e6))
    bad = np.flatnonzero((labels < 0) | (labels >= len(SHD_CLASSES)))
    if bad.size:
        raise DataError(f"{where}: label {labels[bad[0]]} of sample {bad[0]} is not in 0..19")
    return out_t, [np.asarray(u, dtype=np.int64) for u in units], labels


def _shd_split(ctx: Ctx, split: str, binning: Binning) -> Part:
    where, source = _shd_file(ctx, split)
    times, units, labels = read_shd(source, where)
    X = []
    for i, (t, u) in enumerate(zip(times, units, strict=True)):
        zero = np.zeros_like(u)
        frames = bin_events(u, zero, t, zero, (SHD_UNITS, 1, 1), where=f"{where} sample {i}",
                            **binning.kw)  # fmt: skip
        X.append(frames.reshape(frames.shape[0], -1))
    return Part(_stack(X, binning), labels)


@register(
    "shd",
    kind="sequence",
    task="multiclass",
    description="Spiking Heidelberg Digits: spoken digits (English, German) as spikes of 700 "
    "cochlea channels, 8156 train / 2264 test, 20 classes, binned to (T, 700)",
    source="https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/",
    files=("shd/shd_{train,test}.h5 (or .h5.zip / .h5.gz)",),
    official=SHD_FILES,
)
def shd(
    ctx: Ctx,
    *,
    n_time_bins: int = 100,
    bin_us: float | None = 14000.0,
    downsample: int = 1,
    spikes: bool = True,
) -> Dataset:
    """SHD binned by ``htaf.data.events``' rule (default: 100 bins of 14 ms, 1.4 s);
    ``downsample`` pools that many neighbouring channels."""
    binning = Binning("shd", (SHD_UNITS, 1, 1), n_time_bins=n_time_bins, bin_us=bin_us,
                      downsample=downsample, polarity="merge", spikes=spikes)  # fmt: skip
    parts = (_shd_split(ctx, "train", binning), _shd_split(ctx, "test", binning))
    meta = {"source": "SHD (Cramer et al. 2020)", "file": None,
            "files": [f.name for f in SHD_FILES], "binning": binning.rule}  # fmt: skip
    return _dataset("shd", parts, list(SHD_CLASSES), ctx, meta)


# -- DVS Gesture ----------------------------------------------------------------------------------
def check_aedat31(raw: bytes, where: str) -> None:
    """Check an AEDAT 3.1 file of polarity events: its header and every packet's size.

    The header is text lines starting with ``#``, the first ``#!AER-DAT3.1``, the last
    ``#!END-HEADER``; then packets of a 28-byte header (type, source, event size, time-stamp
    offset, overflow, capacity, number, valid; little-endian) and ``capacity × size`` bytes."""
    first = raw.split(b"\n", 1)[0].rstrip(b"\r")
    if not first.startswith(b"#!AER-DAT3.1"):
        raise DataError(
            f"{where}: bad header: the first line is {first[:40]!r}, not '#!AER-DAT3.1'; not an "
            "AEDAT 3.1 file (DVS Gesture's format)"
        )
    end = raw.find(b"#!END-HEADER")
    if end < 0:
        raise DataError(f"{where}: bad header: no '#!END-HEADER' line (truncated in the header)")
    pos = raw.find(b"\n", end) + 1
    if pos == 0:
        raise DataError(f"{where}: truncated after '#!END-HEADER'")
    while pos < len(raw):
        if pos + AEDAT_PACKET_HEADER > len(raw):
            raise DataError(f"{where}: truncated: a packet header at byte {pos} is cut short "
                            f"({len(raw) - pos} of {AEDAT_PACKET_HEADER} bytes)")  # fmt: skip
        kind, _, size, _, _, capacity, number, _ = struct.unpack_from("<hhiiiiii", raw, pos)
        if kind != AEDAT_POLARITY or size != AEDAT_POLARITY_SIZE or not 0 <= number <= capacity:
            raise DataError(
                f"{where}: packet at byte {pos} has event type {kind}, size {size}, number "
                f"{number} of capacity {capacity}; DVS Gesture files hold polarity events "
                f"(type {AEDAT_POLARITY}, {AEDAT_POLARITY_SIZE} bytes each): damaged file"
            )
        pos += AEDAT_PACKET_HEADER + capacity * size
        if pos > len(raw):
            raise DataError(f"{where}: truncated: the packet announces {capacity} events but the "
                            f"file ends {pos - len(raw)} bytes short")  # fmt: skip


def read_dvs_labels(path: Path) -> list[tuple[int, int, int]]:
    """(class index 0-10, start µs, end µs) per row of a ``*_labels.csv``; DataError naming
    the row otherwise."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the labels file ({e})") from e
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip() for c in rows[0]] != ["class", "startTime_usec", "endTime_usec"]:
        raise DataError(f"{path}: the header must be 'class,startTime_usec,endTime_usec'")
    out = []
    for i, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            c, start, end = (int(v) for v in row)
        except ValueError:
            raise DataError(f"{path}: row {i} {row!r} is not three integers") from None
        if not 1 <= c <= len(DVS_CLASSES) or end <= start:
            raise DataError(
                f"{path}: row {i}: class {c} not in 1..11, or end {end} <= start {start}"
            )
        out.append((c - 1, start, end))
    return out


def _dvs_folder(ctx: Ctx) -> Path:
    dirs = search_dirs(ctx.data_dir)
    for d in dirs:
        if (d / DVS_FOLDER).is_dir():
            return d / DVS_FOLDER
    raise DataError(
        f"dataset 'dvs_gesture': folder {DVS_FOLDER!r} not found. Unpack the official "
        f"DvsGesture.tar.gz (IBM) into one of: {', '.join(str(d.resolve()) for d in dirs)} "
        "(data_dir= or $HTAF_DATA), so that it holds user01_fluorescent.aedat, its "
        "_labels.csv, trials_to_train.txt and trials_to_test.txt"
    )


def read_aedat31_events(tio: Any, path: Path) -> dict[str, np.ndarray]:
    """x, y, t (µs), p of a checked AEDAT 3.1 file of polarity events.

    The packets are read by Tonic's ``read_aedat_header_from_file`` and
    ``get_aer_events_from_file``; the addresses decoded as ``tonic.io.read_dvs_ibm`` does
    (``x = addr >> 17``, ``y = addr >> 2``, ``p = addr >> 1``, 13, 13 and 1 bits), which
    Tonic 1.7 cannot call itself (it unpacks the three values of the header reader into two)."""
    version, start, _ = tio.read_aedat_header_from_file(str(path))
    if not version > 3:
        raise DataError(f"{path}: bad header: AEDAT version {version}, not 3.1")
    raw = tio.get_aer_events_from_file(str(path), version, start)
    addr = raw["address"].astype(np.int64)
    return {
        "x": (addr >> 17) & 0x1FFF,
        "y": (addr >> 2) & 0x1FFF,
        "p": (addr >> 1) & 1,
        "t": raw["timeStamp"].astype(np.int64),
    }


def _dvs_split(folder: Path, split: str, binning: Binning) -> Part:
    listing = folder / f"trials_to_{split}.txt"
    if not listing.is_file():
        raise DataError(f"{listing}: not found; the official DvsGesture folder lists each "
                        "split's recordings there")  # fmt: skip
    names = [s.strip() for s in listing.read_text().splitlines() if s.strip()]
    tio = _tonic()
    X, y = [], []
    for name in names:
        path = folder / name
        labels_path = folder / (Path(name).stem + "_labels.csv")
        if not path.is_file():
            raise DataError(f"{path}: listed in {listing.name} but not found")
        check_aedat31(path.read_bytes(), str(path))
        segments = read_dvs_labels(labels_path)
        ev = read_aedat31_events(tio, path)
        t = ev["t"]
        off = np.flatnonzero((ev["x"] >= DVS_SENSOR[0]) | (ev["y"] >= DVS_SENSOR[1]))
        if off.size:
            i = int(off[0])
            raise DataError(f"{path}: event {i} has address x={ev['x'][i]}, y={ev['y'][i]}, "
                            "outside the 128x128 sensor: damaged file")  # fmt: skip
        for c, start, end in segments:
            pick = (t >= start) & (t < end)
            seg = np.zeros(int(pick.sum()), dtype=[("x", int), ("y", int), ("t", int), ("p", int)])
            for k in ("x", "y", "p"):
                seg[k] = ev[k][pick]
            seg["t"] = t[pick] - start
            X.append(binning(seg, f"{path} segment {start}-{end} µs", duration_us=end - start))
            y.append(c)
    return Part(_stack(X, binning), np.asarray(y, dtype=np.int64))


@register(
    "dvs_gesture",
    kind="sequence",
    task="multiclass",
    description="IBM DVS Gesture: 11 hand and arm gestures, 128x128 ON/OFF events (AEDAT 3.1), "
    "1176 train / 288 test segments, binned to (T, 2, 32, 32) by default",
    source="https://research.ibm.com/interactive/dvsgesture/",
    files=("dvs_gesture/DvsGesture/user*.aedat, *_labels.csv, trials_to_{train,test}.txt",),
)
def dvs_gesture(
    ctx: Ctx,
    *,
    n_time_bins: int = 16,
    bin_us: float | None = None,
    downsample: int = 4,
    polarity: str = "both",
    spikes: bool = True,
) -> Dataset:
    """DVS Gesture binned by ``htaf.data.events``' rule (default: 16 equal bins per gesture,
    4 × 4 pixels pooled: ``(16, 2, 32, 32)``)."""
    binning = Binning("dvs_gesture", DVS_SENSOR, n_time_bins=n_time_bins, bin_us=bin_us,
                      downsample=downsample, polarity=polarity, spikes=spikes)  # fmt: skip
    folder = _dvs_folder(ctx)
    parts = (_dvs_split(folder, "train", binning), _dvs_split(folder, "test", binning))
    meta = {"source": "DVS Gesture (Amir et al. 2017)", "file": None, "files": [str(folder)],
            "binning": binning.rule}  # fmt: skip
    return _dataset("dvs_gesture", parts, list(DVS_CLASSES), ctx, meta)
