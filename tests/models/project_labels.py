"""The project's label map (models/bundled/labels.txt), written out by hand for expectations."""

from __future__ import annotations

from pathlib import Path

PROJECT_LABEL_FILE = Path(__file__).resolve().parents[2] / "models" / "bundled" / "labels.txt"
# Line i of the label file is class id i.
PROJECT_CLASS_NAMES = dict(
    enumerate(("sky", "building", "road", "sidewalk", "vegetation", "vehicle", "pedestrian"))
)
