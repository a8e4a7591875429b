"""Tests for models/labels.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.labels import load_labels, parse_inline, parse_pbtxt, parse_txt, read_label_file
from tests.models.project_labels import PROJECT_CLASS_NAMES, PROJECT_LABEL_FILE

PBTXT = """
# OD-API label map
item {
  id: 1
  name: '/m/01g317'
  display_name: "person"
  keypoints { id: 0 label: 'nose' }
}
item { id: 3 name: 'car' }
item {
  name: "traffic \\"light\\""
  id: 10
}
"""


def test_parse_pbtxt_prefers_display_name_and_skips_nested_blocks() -> None:
    assert parse_pbtxt(PBTXT) == {1: "person", 3: "car", 10: 'traffic "light"'}


def test_parse_pbtxt_keeps_utf8_names() -> None:
    assert parse_pbtxt("item { id: 2 name: 'café' }") == {2: "café"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("item { id: 1 }", "needs an `id` and a `name`"),
        ("item { name: 'a' }", "needs an `id` and a `name`"),
        ("item { id: one name: 'a' }", "must be an integer"),
        ("item { id: 1 name: a }", "must be a quoted string"),
        ("item { id: 1 name: 'a' } item { id: 1 name: 'b' }", "appears twice"),
        ("label { id: 1 name: 'a' }", "only `item"),
        ("item { id: 1 name: 'a' } }", "unbalanced"),
        ("item { id: 1 name: 'a' ", "never closed"),
        ("item { id: 1 name: }", "has no value"),
        ("", "empty"),
        ("item { id: -2 name: 'a' }", ">= 0"),
    ],
)
def test_parse_pbtxt_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pbtxt(text, "map.pbtxt")


def test_parse_txt_line_number_is_id() -> None:
    assert parse_txt("sky\nbuilding\n road \n\n\n") == {0: "sky", 1: "building", 2: "road"}


def test_parse_txt_rejects_inner_blank_line() -> None:
    with pytest.raises(ValueError, match="line 2 is empty"):
        parse_txt("sky\n\nroad\n", "labels.txt")


def test_parse_inline_list_and_mapping() -> None:
    assert parse_inline(["a", "b"]) == {0: "a", 1: "b"}
    assert parse_inline({"5": "car", 2: "person"}) == {2: "person", 5: "car"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"x": "car"}, "label ids must be integers"),
        (["a", ""], "non-empty string"),
        (["a", 3], "non-empty string"),
        ([], "empty"),
        (7, "expected a list of names"),
    ],
)
def test_parse_inline_errors(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_inline(value)


def test_read_label_files(tmp_path: Path) -> None:
    (tmp_path / "a.pbtxt").write_text("item { id: 1 name: 'person' }")
    (tmp_path / "b.json").write_text(json.dumps({"1": "person", "2": "car"}))
    (tmp_path / "c.json").write_text(json.dumps(["sky", "road"]))
    (tmp_path / "d.txt").write_text("sky\nroad\n")
    assert read_label_file(tmp_path / "a.pbtxt") == {1: "person"}
    assert read_label_file(tmp_path / "b.json") == {1: "person", 2: "car"}
    assert read_label_file(tmp_path / "c.json") == {0: "sky", 1: "road"}
    assert read_label_file(tmp_path / "d.txt") == {0: "sky", 1: "road"}


def test_read_label_file_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "labels.csv").write_text("a,b")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_label_file(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="unsupported suffix"):
        read_label_file(tmp_path / "labels.csv")
    with pytest.raises(ValueError, match="cannot read label file"):
        read_label_file(tmp_path / "missing.txt")


def test_load_labels_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "l.txt").write_text("x\ny\n")
    assert load_labels("maps/l.txt", tmp_path) == {0: "x", 1: "y"}
    assert load_labels(["p"], tmp_path) == {0: "p"}


def test_project_label_map() -> None:
    assert read_label_file(PROJECT_LABEL_FILE) == PROJECT_CLASS_NAMES
