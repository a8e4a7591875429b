"""JSON encoding of the element NamedTuples that spill files carry (no code runs on decoding).

The per-batch join's inputs (`BatchImages`, `BatchResults`) are spilled to
files (transforms/spill.py). Pickle would restore them in one call, but
unpickling executes whatever the bytes say, and segbeam never unpickles
(tests/reliability/test_security.py). This codec writes each NamedTuple as a
JSON object tagged with its type name and rebuilds only the types listed in
`_TYPES`; tuples come back as tuples, bytes (PNG ground truth) as base64.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from transforms import elements

# Every type a spilled join input can hold; anything else is refused on both sides.
_TYPES: dict[str, type] = {
    name: getattr(elements, name)
    for name in (
        "BatchImages",
        "BatchResults",
        "ClassMask",
        "GroundTruth",
        "ImageInfo",
        "ImageRef",
        "Instance",
        "InstanceResult",
        "SemanticResult",
        "SpillRef",
        "StageError",
    )
}
_TYPE_KEY = "__type__"
_BYTES_KEY = "__bytes__"


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        name = type(value).__name__
        if _TYPES.get(name) is not type(value):
            raise TypeError(f"{name} is not an element type this codec encodes")
        fields = {field: _to_json(item) for field, item in zip(value._fields, value, strict=True)}
        return {_TYPE_KEY: name, **fields}
    if isinstance(value, (tuple, list)):
        return [_to_json(item) for item in value]
    if isinstance(value, bytes):
        return {_BYTES_KEY: base64.b64encode(value).decode("ascii")}
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise TypeError(f"cannot encode a {type(value).__name__} as JSON")


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_from_json(item) for item in value)
    if isinstance(value, dict):
        if _BYTES_KEY in value:
            return base64.b64decode(value[_BYTES_KEY])
        fields = dict(value)
        name = fields.pop(_TYPE_KEY, None)
        if name not in _TYPES:
            raise ValueError(f"unknown element type {name!r} in a spill file")
        return _TYPES[name](**{field: _from_json(item) for field, item in fields.items()})
    return value


def encode_element(value: Any) -> bytes:
    """UTF-8 JSON of an element NamedTuple (floats round-trip exactly)."""
    return json.dumps(_to_json(value), separators=(",", ":")).encode()


def decode_element(data: bytes) -> Any:
    """The element `encode_element` encoded.

    Raises:
      ValueError: the data is not JSON, or names a type outside this codec's list.
    """
    return _from_json(json.loads(data))
