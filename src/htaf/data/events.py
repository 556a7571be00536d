"""Event data: the binning rule that turns events into spike tensors, and ``event_motion``.

An event camera (or a cochlea model) writes a list of events ``(x, y, t, p)``: a pixel (or a
channel ``x`` with ``y = 0``), a time stamp ``t`` in microseconds and a polarity ``p`` (1: the
brightness rose, ON; 0: it fell, OFF). A spiking network takes a tensor ``(T, B, ...)``, so the
events of one recording are binned (:func:`bin_events`):

* **time**: the recording's window ``[0, D)`` (times relative to its start) is cut into
  ``T = n_time_bins`` bins. With ``bin_us=None`` the bins split the recording into T equal
  parts, ``D = t_last + 1``; with ``bin_us = b`` each bin lasts b µs, ``D = T·b``, and events
  at ``t >= T·b`` are dropped (a short recording leaves its last bins empty). Event ``t`` goes
  to bin ``floor(t·T / D)``. A bin ``<= 0`` is an error, and so is one longer than the
  recording (``b > t_last + 1``): each names the option;
* **space**: ``downsample = d`` pools d × d pixels into one: ``(x // d, y // d)``;
* **polarity**: ``polarity="both"`` keeps ON and OFF as two channels (OFF first, as Tonic
  orders them: channel = p), ``"merge"`` sums them into one;
* **value**: ``spikes=True`` gives 1 where a bin holds at least one event, else 0 (a spike
  train); ``spikes=False`` the event counts.

A recording becomes ``(T, P, H, W)`` float32 (P = 2, or 1 merged); a sensor with one row
(SHD's 700 cochlea channels) keeps ``(T, W)``. The datasets are ``kind="sequence"``: samples
``(n, T, ...)`` with time first; the SNN family feeds them to its neurons step by step, no
encoder.

``event_motion`` (generated, no files): a dot hops along a straight line on a 16 × 16 sensor,
one position per time slot; at every hop its new pixels fire ON and, a moment later, OFF.
The class is the direction (right, left, down, up). Every pixel of the path fires once ON and
once OFF whichever way the dot goes, so the events summed over time are the same for opposite
directions: only their order tells right from left, and a model blind to time (the
non-spiking reference, which sees the time average) cannot beat 50% on those pairs.
"""

from __future__ import annotations

import functools
import numbers

import numpy as np

from .arrays import Part, build_dataset
from .dataset import DataError, Dataset
from .registry import Ctx, register

POLARITIES = ("both", "merge")
#: ``event_motion``'s classes, in order.
DIRECTIONS = ["right", "left", "down", "up"]
MOTION_SIDE = 16
MOTION_SLOT_US = 1000  # one hop per millisecond
MIN_PER_CLASS = 10


def check_binning(
    what: str, n_time_bins: object, bin_us: object, downsample: object, polarity: object
) -> tuple[int, float | None, int, str]:
    """The binning options, checked; DataError naming ``what`` and the option otherwise."""
    if isinstance(n_time_bins, bool) or not isinstance(n_time_bins, numbers.Integral):
        raise DataError(
            f"{what}: option 'n_time_bins' must be an integer >= 1, not {n_time_bins!r}"
        )
    if n_time_bins < 1:
        raise DataError(f"{what}: option 'n_time_bins' must be >= 1, not {n_time_bins}")
    if bin_us is not None:
        if isinstance(bin_us, bool) or not isinstance(bin_us, numbers.Real):
            raise DataError(f"{what}: option 'bin_us' must be a number of µs > 0, not {bin_us!r}")
        if not bin_us > 0:  # NaN fails too
            raise DataError(f"{what}: option 'bin_us' (time bin) must be > 0 µs, not {bin_us}")
    if isinstance(downsample, bool) or not isinstance(downsample, numbers.Integral):
        raise DataError(f"{what}: option 'downsample' must be an integer >= 1, not {downsample!r}")
    if downsample < 1:
        raise DataError(f"{what}: option 'downsample' must be >= 1, not {downsample}")
    if polarity not in POLARITIES:
        raise DataError(f"{what}: option 'polarity' must be one of {POLARITIES}, not {polarity!r}")
    return int(n_time_bins), None if bin_us is None else float(bin_us), int(downsample), polarity


def check_spikes(what: str, spikes: object) -> bool:
    """``spikes`` as a bool; DataError naming the option otherwise (a string is not one)."""
    if not isinstance(spikes, bool | np.bool_):
        raise DataError(f"{what}: option 'spikes' must be true or false, not {spikes!r}")
    return bool(spikes)


def bin_events(
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    p: np.ndarray,
    sensor: tuple[int, int, int],
    *,
    n_time_bins: int,
    bin_us: float | None = None,
    downsample: int = 1,
    polarity: str = "both",
    spikes: bool = True,
    duration_us: float | None = None,
    where: str = "recording",
) -> np.ndarray:
    """The events of one recording as ``(T, P, ceil(H/d), ceil(W/d))`` float32 (module doc).

    ``sensor`` is ``(W, H, P)`` as Tonic writes it; ``t`` in µs from the recording's start.
    ``duration_us`` is the recording's length where the file says it (a labelled segment);
    else ``t_last + 1``. ``where`` names the recording in errors.
    """
    width, height, n_pol = sensor
    t = np.asarray(t, dtype=np.float64)
    length = (
        float(duration_us) if duration_us is not None else (float(t.max()) + 1 if t.size else 1.0)
    )
    if bin_us is not None and bin_us > length:
        raise DataError(
            f"{where}: option 'bin_us' = {bin_us:g} µs is longer than the recording "
            f"({length:g} µs); choose a time bin <= {length:g} µs"
        )
    span = n_time_bins * bin_us if bin_us is not None else length
    k = np.floor(t * n_time_bins / span).astype(np.int64)
    keep = (k >= 0) & (k < n_time_bins)
    d = downsample
    h, w = -(-height // d), -(-width // d)
    chan = np.zeros_like(k) if polarity == "merge" else np.asarray(p, dtype=np.int64)
    c = 1 if polarity == "merge" else n_pol
    flat = ((k * c + chan) * h + np.asarray(y, np.int64) // d) * w + np.asarray(x, np.int64) // d
    counts = np.bincount(flat[keep], minlength=n_time_bins * c * h * w)
    out = counts.reshape(n_time_bins, c, h, w).astype(np.float32)
    return np.minimum(out, 1.0) if spikes else out


# -- event_motion ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def motion_events(n: int, seed: int, noise: float) -> tuple[list[np.ndarray], np.ndarray]:
    """(events per sample as an ``(m, 4)`` int64 array of x, y, t µs, p; directions (n,)).

    Each sample: a square dot of side 1 or 2 starts anywhere its path fits and hops 6 to 10
    times by 1 pixel (a random pace: 1 hop per slot, 1 ms). At each hop the pixels it lands on
    fire ON at a random moment of the slot's first half and OFF in its second half. ``noise``
    adds that many uniformly random events per sample, as a fraction of its real events.
    Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    direction = rng.integers(0, len(DIRECTIONS), n)
    step = np.array([(1, 0), (-1, 0), (0, 1), (0, -1)])
    samples = []
    for i in range(n):
        size = int(rng.integers(1, 3))
        hops = int(rng.integers(6, 11))
        reach = hops + size - 1  # pixels the path covers along its axis
        dx, dy = step[direction[i]]
        # a start from which all ``hops`` positions stay on the sensor
        lo_x = reach - 1 if dx < 0 else 0
        hi_x = MOTION_SIDE - (reach if dx > 0 else size)
        lo_y = reach - 1 if dy < 0 else 0
        hi_y = MOTION_SIDE - (reach if dy > 0 else size)
        x0 = (
            int(rng.integers(lo_x, hi_x + 1))
            if dx
            else int(rng.integers(0, MOTION_SIDE - size + 1))
        )
        y0 = (
            int(rng.integers(lo_y, hi_y + 1))
            if dy
            else int(rng.integers(0, MOTION_SIDE - size + 1))
        )
        if dx < 0:
            x0 -= size - 1
        if dy < 0:
            y0 -= size - 1
        start_slot = int(rng.integers(0, 2))
        rows = []
        for h in range(hops):
            px, py = x0 + dx * h, y0 + dy * h
            slot = (start_slot + h) * MOTION_SLOT_US
            on = slot + rng.integers(0, MOTION_SLOT_US // 2)
            off = slot + MOTION_SLOT_US // 2 + rng.integers(0, MOTION_SLOT_US // 2)
            for ox in range(size):
                for oy in range(size):
                    rows.append((px + ox, py + oy, on, 1))
                    rows.append((px + ox, py + oy, off, 0))
        ev = np.array(rows, dtype=np.int64)
        extra = round(noise * len(ev))
        if extra:
            end = (start_slot + hops) * MOTION_SLOT_US
            junk = np.stack(
                [rng.integers(0, MOTION_SIDE, extra), rng.integers(0, MOTION_SIDE, extra),
                 rng.integers(0, end, extra), rng.integers(0, 2, extra)], axis=1,
            )  # fmt: skip
            ev = np.concatenate([ev, junk])
        samples.append(ev[np.argsort(ev[:, 2], kind="stable")])
    return samples, direction.astype(np.int64)


@register(
    "event_motion",
    kind="sequence",
    task="multiclass",
    description="Generated ON/OFF events of a dot hopping across a 16x16 sensor; class = "
    "direction (4); opposite directions differ only in time order. (n, T, 2, 16, 16) spikes",
    source="generated (seed = split_seed unless seed= is given)",
)
def event_motion(
    ctx: Ctx,
    *,
    n: int = 2000,
    n_time_bins: int = 12,
    bin_us: float | None = 1000.0,
    downsample: int = 1,
    polarity: str = "both",
    spikes: bool = True,
    noise: float = 0.1,
    seed: int | None = None,
) -> Dataset:
    """``n`` recordings binned by the module doc's rule (default: 12 bins of 1 ms, one hop per
    bin); ``noise``: random events per sample as a fraction of its real events, in [0, 2]."""
    T, bin_us, d, polarity = check_binning(
        "event_motion", n_time_bins, bin_us, downsample, polarity
    )
    spikes = check_spikes("event_motion", spikes)
    least = len(DIRECTIONS) * MIN_PER_CLASS
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < least:
        raise DataError(f"event_motion: option 'n' must be an integer >= {least}, not {n!r}")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not 0 <= noise <= 2:
        raise DataError(f"event_motion: option 'noise' must be a number in [0, 2], not {noise!r}")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0
    ):
        raise DataError(
            f"event_motion: option 'seed' must be None or an integer >= 0, not {seed!r}"
        )
    seed = ctx.seed if seed is None else int(seed)
    samples, y = motion_events(int(n), seed, float(noise))
    sensor = (MOTION_SIDE, MOTION_SIDE, 2)
    X = np.stack([
        bin_events(ev[:, 0], ev[:, 1], ev[:, 2], ev[:, 3], sensor, n_time_bins=T, bin_us=bin_us,
                   downsample=d, polarity=polarity, spikes=bool(spikes),
                   where=f"event_motion sample {i}")
        for i, ev in enumerate(samples)
    ])  # fmt: skip
    settings = {"n": int(n), "n_time_bins": T, "bin_us": bin_us, "downsample": d,
                "polarity": polarity, "spikes": bool(spikes), "noise": float(noise),
                "seed": seed}  # fmt: skip
    return build_dataset(
        "event_motion",
        "sequence",
        Part(X, y),
        None,
        class_names=list(DIRECTIONS),
        seed=ctx.seed,
        val_size=ctx.val_size,
        test_size=ctx.test_size,
        normalize=None,
        meta={
            "source": "generated event_motion",
            "file": None,
            "files": [],
            "event_motion": settings,
            "binning": binning_rule(T, bin_us, d, polarity, bool(spikes)),
            "class_rule": "class = direction of the hops (right, left, down, up)",
        },
    )


def binning_rule(T: int, bin_us: float | None, d: int, polarity: str, spikes: bool) -> str:
    """The binning rule of a loaded set, in words (``Dataset.meta["binning"]``)."""
    when = (
        f"{T} equal bins over each recording"
        if bin_us is None
        else f"{T} bins of {bin_us:g} µs from each recording's start (later events dropped)"
    )
    pol = "ON/OFF as two channels" if polarity == "both" else "polarities merged"
    value = "1 if a bin holds an event (spikes)" if spikes else "event counts"
    return f"{when}; {d}x{d} pixels pooled; {pol}; {value}"
