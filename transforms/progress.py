"""Progress while a run goes: a log line at least every 10 s, and a bar on a terminal.

Runners show no progress of their own on a laptop, and cluster UIs show Beam
counters only. `ReportProgress` is a pass-through step on the decoded stream
(fused with decode and inference, so it costs a counter increment per image)
that logs, per worker process: images done, images/s, errors so far, and an ETA
when the run's total is known (image-file inputs; a TFRecord shard's record
count is only known once it's read). All DoFn instances of a process share one
tracker, so a multi-threaded worker reports once, not once per thread.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator

import apache_beam as beam

from transforms.elements import DecodedBatch

_LOGGER = logging.getLogger("segbeam.progress")
LOG_INTERVAL_SECONDS = 10.0
BAR_INTERVAL_SECONDS = 0.5


class _Tracker:
    """Process-wide progress counts."""

    def __init__(self, total: int | None, interval: float) -> None:
        self.total = total
        self.interval = interval
        self.done = 0
        self.errors = 0
        self.started = time.monotonic()
        self.last_log = self.started
        self.last_bar = self.started
        self.lock = threading.Lock()

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        text = f"{self.done} images done, {rate:.1f} images/s, {self.errors} errors"
        if self.total:
            text = f"{self.done}/{self.total} images, {rate:.1f} images/s, {self.errors} errors"
            if rate > 0 and self.done < self.total:
                text += f", ETA {(self.total - self.done) / rate:.0f} s"
        return text


_TRACKERS: dict[tuple[int | None, float], _Tracker] = {}
_TRACKERS_LOCK = threading.Lock()


def _tracker(total: int | None, interval: float) -> _Tracker:
    with _TRACKERS_LOCK:
        return _TRACKERS.setdefault((total, interval), _Tracker(total, interval))


class _ReportProgressDoFn(beam.DoFn):
    def __init__(self, total: int | None, interval: float) -> None:
        self._total = total
        self._interval = interval
        self._tracker: _Tracker | None = None

    def setup(self) -> None:
        self._tracker = _tracker(self._total, self._interval)

    def process(self, batch: DecodedBatch) -> Iterator[DecodedBatch]:
        tracker = self._tracker
        now = time.monotonic()
        with tracker.lock:
            tracker.done += len(batch)
            tracker.errors += sum(1 for image in batch if image.error is not None)
            if now - tracker.last_log >= tracker.interval:
                tracker.last_log = now
                _LOGGER.info("progress: %s", tracker.line(now))
            elif sys.stderr.isatty() and now - tracker.last_bar >= BAR_INTERVAL_SECONDS:
                tracker.last_bar = now
                sys.stderr.write(f"\r{tracker.line(now)} ")
                sys.stderr.flush()
        yield batch


class ReportProgress(beam.PTransform):
    """Pass-through over PCollection[DecodedBatch] that reports progress.

    Args:
      total: The number of records the run will read, if known before it starts.
      interval: Seconds between log lines.
    """

    def __init__(self, total: int | None = None, interval: float = LOG_INTERVAL_SECONDS) -> None:
        super().__init__()
        if total is not None and total < 0:
            raise ValueError(f"total must be >= 0 or None, got {total}.")
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}.")
        self._total = total
        self._interval = interval

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return batches | "LogProgress" >> beam.ParDo(
            _ReportProgressDoFn(self._total, self._interval)
        )
