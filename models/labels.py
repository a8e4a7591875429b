"""Label maps: class id -> class name, from inline values or label files.

Accepted forms (the `labels` key of a model spec):
  * an inline list of names: id i is the i-th name (0-based);
  * an inline mapping {id: name} (JSON object keys may be numeric strings);
  * a file: OD-API text proto `.pbtxt` (`item { id: 1 name: 'person' }`, where
    `display_name` wins over `name` when both are present, because OD-API's
    `name` is often a machine id such as '/m/01g317'), `.json` (a list or an
    object as above), or `.txt` (one name per line, line i is id i, 0-based).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

LABEL_FILE_SUFFIXES = (".pbtxt", ".json", ".txt")

_SKIP = re.compile(r"(?:\s+|#[^\n]*)*")  # Whitespace and comments between tokens.
_TOKEN = re.compile(
    r"""(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<punct>[{}:;,])
      | (?P<word>[^\s{}:;,'"\#]+)""",
    re.VERBOSE,
)


def _tokens(text: str, source: str) -> Iterator[str]:
    """Splits text-proto into tokens (strings keep their quotes), dropping comments."""
    pos = _SKIP.match(text).end()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"{source}: cannot parse text proto near {text[pos : pos + 30]!r}")
        yield match.group(match.lastgroup)
        pos = _SKIP.match(text, match.end()).end()


def _parse_message(
    tokens: Iterator[str], source: str, nested: bool = False
) -> list[tuple[str, object]]:
    """Parses `key: value` and `key { ... }` fields up to the closing brace (nested) or the end."""
    fields: list[tuple[str, object]] = []
    for token in tokens:
        if token == "}":
            if not nested:
                raise ValueError(f"{source}: unbalanced '}}'; check the item blocks' braces")
            return fields
        if token in {";", ","}:
            continue
        key = token
        following = next(tokens, None)
        if following == ":":
            following = next(tokens, None)
        if following == "{":
            fields.append((key, _parse_message(tokens, source, nested=True)))
        elif following is None or following in {"}", ":", ";", ","}:
            raise ValueError(f"{source}: field {key!r} has no value")
        else:
            fields.append((key, following))
    if nested:
        raise ValueError(f"{source}: a '{{' is never closed; check the item blocks' braces")
    return fields


def _unquote(value: object, source: str, key: str) -> str:
    if not isinstance(value, str) or len(value) < 2 or value[0] not in "'\"":
        raise ValueError(f"{source}: {key} must be a quoted string, got {value!r}")
    return re.sub(r"\\(.)", r"\1", value[1:-1])


def parse_pbtxt(text: str, source: str = "<pbtxt>") -> dict[int, str]:
    """Parses an OD-API `StringIntLabelMap` text proto.

    Args:
      text: The file's contents.
      source: Where the text came from, for error messages.

    Returns:
      id -> name (`display_name` if present, else `name`).
    """
    labels: dict[int, str] = {}
    for key, item in _parse_message(_tokens(text, source), source):
        if key != "item" or not isinstance(item, list):
            raise ValueError(f"{source}: expected only `item {{ ... }}` blocks, found {key!r}")
        values = dict(item)
        if "id" not in values or not ("name" in values or "display_name" in values):
            raise ValueError(f"{source}: every item needs an `id` and a `name`, got {values}")
        try:
            class_id = int(str(values["id"]))
        except ValueError as e:
            raise ValueError(f"{source}: item id must be an integer, got {values['id']!r}") from e
        name_key = "display_name" if "display_name" in values else "name"
        _add(labels, class_id, _unquote(values[name_key], source, name_key), source)
    return _checked(labels, source)


def parse_txt(text: str, source: str = "<txt>") -> dict[int, str]:
    """Parses one name per line: line i (0-based) is class id i.

    Trailing blank lines are ignored; a blank line before the last name is an
    error, because skipping it would silently shift every later id.
    """
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for number, line in enumerate(lines):
        if not line:
            raise ValueError(
                f"{source}: line {number + 1} is empty; every line up to the last name must "
                "hold one class name (line i is class id i)"
            )
    return _checked(dict(enumerate(lines)), source)


def parse_inline(value: object, source: str = "labels") -> dict[int, str]:
    """Parses an inline list of names or an {id: name} mapping."""
    if isinstance(value, Mapping):
        labels: dict[int, str] = {}
        for key, name in value.items():
            try:
                class_id = int(key)
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"{source}: label ids must be integers, got key {key!r}; write "
                    "{0: 'sky', 1: 'building'} or a list of names"
                ) from e
            _add(labels, class_id, name, source)
        return _checked(labels, source)
    if isinstance(value, Sequence) and not isinstance(value, str):
        labels = {}
        for class_id, name in enumerate(value):
            _add(labels, class_id, name, source)
        return _checked(labels, source)
    raise ValueError(
        f"{source}: expected a list of names, an {{id: name}} mapping or a label file path, "
        f"got {type(value).__name__}"
    )


def _add(labels: dict[int, str], class_id: int, name: object, source: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{source}: class {class_id} needs a non-empty string name, got {name!r}")
    if class_id in labels:
        raise ValueError(
            f"{source}: class id {class_id} appears twice ({labels[class_id]!r} and {name!r})"
        )
    labels[class_id] = name.strip()


def _checked(labels: dict[int, str], source: str) -> dict[int, str]:
    if not labels:
        raise ValueError(f"{source}: the label map is empty; list at least one class")
    negative = sorted(i for i in labels if i < 0)
    if negative:
        raise ValueError(f"{source}: class ids must be >= 0, got {negative}")
    return dict(sorted(labels.items()))


def read_label_file(path: Path) -> dict[int, str]:
    """Reads a `.pbtxt`, `.json` or `.txt` label file.

    Raises:
      ValueError: If the file is missing, has another suffix, or is malformed.
    """
    if path.suffix not in LABEL_FILE_SUFFIXES:
        raise ValueError(
            f"label file {path} has an unsupported suffix; use one of {LABEL_FILE_SUFFIXES}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read label file {path}: {e}; check the `labels` path") from e
    if path.suffix == ".pbtxt":
        return parse_pbtxt(text, str(path))
    if path.suffix == ".txt":
        return parse_txt(text, str(path))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"label file {path} is not valid JSON: {e}") from e
    return parse_inline(value, str(path))


def load_labels(value: object, base_dir: Path) -> dict[int, str]:
    """Resolves a spec's `labels` value.

    Args:
      value: A label file path (relative paths resolve against `base_dir`), an
        inline list of names, or an inline {id: name} mapping.
      base_dir: Directory relative label file paths are resolved against.

    Returns:
      id -> name, ascending id.
    """
    if isinstance(value, str):
        return read_label_file((base_dir / value).resolve())
    return parse_inline(value)
