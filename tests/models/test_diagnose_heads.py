"""Tests for the ground-truth head swap (models.diagnose_heads) on the bundled model."""

from __future__ import annotations

from models import diagnose_heads


def test_swapping_in_every_ground_truth_head_beats_the_predictions(capsys):
    diagnose_heads.main(["--num_images", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["variant", "AP50", "vehicle", "pedestrian"]
    rows = {line[:30].strip(): [float(v) for v in line[30:].split()] for line in lines[1:]}
    assert list(rows) == list(diagnose_heads.VARIANTS)
    # Perfect heads leave only the output grid's and the grouping's losses.
    assert rows["all ground truth"][0] >= 0.6
    assert rows["all ground truth"][0] > rows["predicted"][0]
    assert all(0.0 <= v <= 1.0 or v == -1.0 for values in rows.values() for v in values)
