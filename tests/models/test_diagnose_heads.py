"""Tests for the ground-truth head swap (models.diagnose_heads) on the bundled model."""

from __future__ import annotations

from models import diagnose_heads


def test_swapping_in_every_ground_truth_head_beats_the_predictions(capsys):
    diagnose_heads.main(["--num_images", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "variant",
        "all_AP",
        "all_AP50",
        "vehicle_AP",
        "vehicle_AP50",
        "pedestrian_AP",
        "pedestrian_AP50",
    ]
    rows = {line[:30].strip(): [float(v) for v in line[30:].split()] for line in lines[1:]}
    assert list(rows) == list(diagnose_heads.VARIANTS)
    perfect, predicted = rows["all ground truth"], rows["predicted"]
    # Perfect heads leave only the output grid's, the grouping's and the paste's losses.
    assert perfect[1] >= 0.6
    assert perfect[1] > predicted[1]
    assert perfect[0] > predicted[0]
    # AP averages AP50 with stricter IoUs, so it can never exceed it.
    assert all(row[0] <= row[1] for row in rows.values() if row[0] >= 0)
    assert all(0.0 <= v <= 1.0 or v == -1.0 for values in rows.values() for v in values)


def test_diagnose_runs_the_networks_at_another_input_shape(capsys):
    diagnose_heads.main(["--num_images", "2", "--input_shape", "320x640"])
    lines = capsys.readouterr().out.splitlines()
    rows = {line[:30].strip(): [float(v) for v in line[30:].split()] for line in lines[1:]}
    assert list(rows) == list(diagnose_heads.VARIANTS)
    assert rows["all ground truth"][1] > rows["predicted"][1]
