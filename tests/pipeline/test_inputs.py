"""Tests for pipeline/inputs.py: pattern splitting and work-unit planning."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.inputs import is_tfrecord_path, plan_work_units, split_patterns
from transforms.elements import UNIT_IMAGE_FILES, UNIT_TFRECORD, WorkUnit


def _touch(path: Path, content: bytes = b"x") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return str(path)


def test_split_patterns_strips_and_drops_empty_parts():
    assert split_patterns(" /a/*.jpg, gs://b/c-*.tfrecord,,") == ("/a/*.jpg", "gs://b/c-*.tfrecord")


def test_split_patterns_rejects_text_without_patterns():
    with pytest.raises(ValueError, match="holds no file pattern"):
        split_patterns(" , ")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("train.tfrecord", True),
        ("train.tfrecords", True),
        ("train.TFRecord", True),
        ("x.tfrec", True),
        ("coco.record", True),
        ("train.tfrecord-00003-of-00010", True),
        ("coco_train.record-00000-of-00100", True),
        ("photo.jpg", False),
        ("recording.png", False),
        ("tfrecord_notes.txt", False),
    ],
)
def test_is_tfrecord_path(name, expected):
    assert is_tfrecord_path(f"/data/{name}") is expected


def test_tfrecords_become_one_unit_each_and_images_are_grouped(tmp_path):
    shards = [_touch(tmp_path / f"s-{i}.tfrecord-0000{i}-of-00002") for i in range(2)]
    images = [_touch(tmp_path / f"img{i}.jpg") for i in range(5)]

    units = plan_work_units([str(tmp_path / "*")], batch_size=2)

    assert units == (
        WorkUnit(UNIT_TFRECORD, (shards[0],)),
        WorkUnit(UNIT_TFRECORD, (shards[1],)),
        WorkUnit(UNIT_IMAGE_FILES, (images[0], images[1])),
        WorkUnit(UNIT_IMAGE_FILES, (images[2], images[3])),
        WorkUnit(UNIT_IMAGE_FILES, (images[4],)),
    )


def test_overlapping_patterns_are_deduplicated_and_sorted(tmp_path):
    b = _touch(tmp_path / "b.png")
    a = _touch(tmp_path / "a.png")
    c = _touch(tmp_path / "c.png")

    units = plan_work_units([str(tmp_path / "c.png"), str(tmp_path / "*.png"), b], batch_size=10)

    assert units == (WorkUnit(UNIT_IMAGE_FILES, (a, b, c)),)


def test_relative_patterns_become_absolute(tmp_path, monkeypatch):
    _touch(tmp_path / "sub" / "x.tfrecord")
    monkeypatch.chdir(tmp_path)

    units = plan_work_units(["sub/*.tfrecord"], batch_size=4)

    assert units == (WorkUnit(UNIT_TFRECORD, (os.path.join(str(tmp_path), "sub", "x.tfrecord"),)),)


def test_directories_are_skipped_and_zero_byte_files_kept(tmp_path):
    (tmp_path / "nested.jpg").mkdir()  # A directory whose name looks like an image.
    empty = _touch(tmp_path / "empty.jpg", b"")

    units = plan_work_units([str(tmp_path / "*.jpg")], batch_size=4)

    assert units == (WorkUnit(UNIT_IMAGE_FILES, (empty,)),)


def test_spaces_and_non_ascii_names_are_kept_verbatim(tmp_path):
    path = _touch(tmp_path / "straße mit Leerzeichen ü.jpg")

    assert plan_work_units([str(tmp_path / "*.jpg")], batch_size=1) == (
        WorkUnit(UNIT_IMAGE_FILES, (path,)),
    )


def test_pattern_matching_nothing_is_named_in_the_error(tmp_path):
    _touch(tmp_path / "a.jpg")
    missing = str(tmp_path / "*.tfrecord")

    with pytest.raises(ValueError, match="matched no file") as info:
        plan_work_units([str(tmp_path / "a.jpg"), missing], batch_size=2)

    assert repr(missing) in str(info.value)


def test_pattern_matching_only_a_directory_suggests_a_glob(tmp_path):
    (tmp_path / "images").mkdir()

    with pytest.raises(ValueError, match=r"only directories.*images/\*"):
        plan_work_units([str(tmp_path / "images")], batch_size=2)


def test_empty_pattern_list_and_bad_batch_size_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="no input patterns"):
        plan_work_units([], batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        plan_work_units([str(tmp_path / "*")], batch_size=0)
