"""TensorBoard tracking: one event folder per run under ``ROOT/tensorboard/``.

The run's config as a text table at step 0, each epoch's scalars at step = epoch, and at the
end ``final/<metric>``, a histogram per hidden layer and the plots as PNG images.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from htaf.train.tracker import TENSORBOARD_DIR, RunTracker, Tracking, final_scalars, params

#: Bins of the activation histograms TensorBoard gets at the end of a run.
HISTOGRAM_BINS = 50


class EventFile:
    """One TensorBoard event file, written in the calling thread and flushed at every event.

    Not ``SummaryWriter``: its background thread computes the records' (pure-Python) CRCs
    while holding the GIL, so the training loop waits for it, on a busy machine for up to the
    interpreter's 5 ms switch interval per event. An epoch's scalars are one event of ~3 kB,
    cheaper written here. ``purge_step``: TensorBoard hides the earlier files' events from
    that step on (a resumed run logs them again).
    """

    _count = itertools.count()

    def __init__(self, logdir: str | Path, purge_step: int | None = None):
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event = Event
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self._records = RecordWriter(open(logdir / f"{name}.{next(self._count)}", "wb"))  # noqa: SIM115
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:
            start = SessionLog(status=SessionLog.START)
            self._write(Event(wall_time=time.time(), step=purge_step, session_log=start))

    def _write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())
        self._records.flush()

    def add(self, summary: Any, step: int) -> None:
        self._write(self._event(wall_time=time.time(), step=step, summary=summary))

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        self.add(Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items()]),
                 step)  # fmt: skip

    def text(self, tag: str, text: str, step: int) -> None:
        from torch.utils.tensorboard.summary import text as text_summary

        self.add(text_summary(tag, text), step)

    def histogram(self, tag: str, values: Any, step: int) -> None:
        import numpy as np
        from torch.utils.tensorboard.summary import histogram_raw

        v = np.asarray(values, dtype=np.float64).ravel()
        if len(v):
            counts, edges = np.histogram(v, bins=HISTOGRAM_BINS)
            self.add(histogram_raw(
                tag, min=float(v.min()), max=float(v.max()), num=len(v), sum=float(v.sum()),
                sum_squares=float(np.square(v).sum()), bucket_limits=edges[1:].tolist(),
                bucket_counts=counts.tolist(),
            ), step)  # fmt: skip

    def images(self, paths: Iterable[Path], step: int) -> None:
        """PNG files as they are (no decoding): ``plots/<stem>``."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        for path in paths:
            data = Path(path).read_bytes()
            if Path(path).suffix != ".png" or data[12:16] != b"IHDR":
                continue
            width, height = struct.unpack(">II", data[16:24])
            channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(data[25], 4)  # PNG colour type
            image = Summary.Image(height=height, width=width, colorspace=channels,
                                  encoded_image_string=data)  # fmt: skip
            self.add(Summary(value=[Summary.Value(tag=f"plots/{Path(path).stem}", image=image)]),
                     step)  # fmt: skip

    def close(self) -> None:
        self._records.close()


def _markdown_table(rows: Mapping[str, str]) -> str:
    return "| key | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows.items())


class TensorBoardTracker(RunTracker):
    """Event files in ``ROOT/tensorboard/<run name>``."""

    events: EventFile | None = None  # opened by on_fit_start (or by finish)

    def open(self, start_epoch: int) -> None:
        logdir = Path(self.tracking.root) / TENSORBOARD_DIR / self.name
        # Hide steps logged after the checkpoint by the run this one resumes (they are logged
        # again) or by an earlier run that this one replaces.
        self.events = EventFile(logdir, purge_step=start_epoch + 1)
        if start_epoch == 0:
            self.events.text("config", _markdown_table(params(self.config)), 0)

    def log(self, values: Mapping[str, float], step: int) -> None:
        self.events.scalars(values, step)

    def histograms(self, samples: Mapping[str, Any], step: int) -> None:
        for layer, values in samples.items():
            self.events.histogram(f"activations_smooth/{layer}", values, step)

    def finish(self, metrics: Mapping[str, Any], plots: Iterable[Path] = ()) -> None:
        if self.events is None:
            self.open(0)
        step = int(metrics.get("epochs_run") or 0)
        self.events.scalars(final_scalars(metrics), step)
        self.events.images(plots, step)
        self.events.close()

    def fail(self) -> None:
        if self.events is not None:
            self.events.close()


def log_plots(tracking: Tracking, run_dir: str | Path, plots: Iterable[Path], step: int) -> None:
    """Plots drawn after a run finished, added to its event folder."""
    events = EventFile(Path(tracking.root) / TENSORBOARD_DIR / tracking.run_name(run_dir))
    events.images(plots, step)
    events.close()


def log_summary_run(
    tracking: Tracking, values: Mapping[str, float], plots: list[Path], reports: list[Path]
) -> None:
    """The experiment's means as scalars, its plots as images and report.md as text."""
    events = EventFile(Path(tracking.root) / TENSORBOARD_DIR / "summary")
    events.scalars(values, 0)
    events.images(plots, 0)
    for path in reports:
        if Path(path).suffix == ".md":
            events.text("report", Path(path).read_text(), 0)
    events.close()
