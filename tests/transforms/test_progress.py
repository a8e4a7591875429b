"""ReportProgress: a pass-through that logs images done, rate, errors and ETA."""

import logging

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms import progress
from transforms.elements import DecodedImage, ImageRef, StageError
from transforms.progress import ReportProgress


def _image(i, error=None):
    pixels = None if error else np.zeros((1, 1, 3), np.uint8)
    return DecodedImage(ImageRef(f"id{i}", "s", i), pixels, 1, 1, "", "", "", None, error)


def test_passes_batches_through_and_logs(caplog, monkeypatch):
    monkeypatch.setattr(progress, "_TRACKERS", {})
    failed = StageError("decode", "EmptyImage", "empty")
    batches = [(_image(0), _image(1)), (_image(2, failed),), (_image(3),)]
    caplog.set_level(logging.INFO, logger="segbeam.progress")
    with TestPipeline() as p:
        # An interval of a microsecond makes every batch after the first log a line.
        out = p | beam.Create(batches) | ReportProgress(total=8, interval=1e-6)
        assert_that(
            out | beam.Map(lambda b: [i.ref.image_id for i in b]),
            equal_to([["id0", "id1"], ["id2"], ["id3"]]),
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "segbeam.progress"]
    assert lines, "no progress line was logged"
    # After all three batches: 4 of 8 images, 1 error, and an ETA since the total is known.
    assert any("4/8 images" in line and "1 errors" in line and "ETA" in line for line in lines)


def test_without_a_known_total_there_is_no_eta():
    tracker = progress._Tracker(total=None, interval=10)
    tracker.done = 5
    line = tracker.line(tracker.started + 2.0)
    assert line == "5 images done, 2.5 images/s, 0 errors"


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="interval must be > 0"):
        ReportProgress(interval=0)
    with pytest.raises(ValueError, match="total must be >= 0"):
        ReportProgress(total=-1)
