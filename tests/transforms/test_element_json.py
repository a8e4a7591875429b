"""transforms/element_json.py: spilled join inputs round-trip exactly, and nothing else decodes."""

from __future__ import annotations

import json
from typing import NamedTuple

import pytest

from transforms.element_json import decode_element, encode_element
from transforms.elements import (
    BatchImages,
    BatchResults,
    ClassMask,
    GroundTruth,
    ImageInfo,
    ImageRef,
    Instance,
    InstanceResult,
    SemanticResult,
    SpillRef,
    StageError,
)


def test_join_inputs_round_trip_exactly() -> None:
    truth = GroundTruth(b"\x89PNG\x00\xff", (b"a", b"\x00"), (5, 6))
    images = BatchImages(
        "id-1",
        "/data/s ü.tfrecord",
        (
            ImageInfo(
                ImageRef("id-1", "/data/s ü.tfrecord", 0), 4, 2, "f.jpg", "", "ab", None, truth
            ),
            ImageInfo(
                ImageRef("id-2", "/data/s ü.tfrecord", 1),
                0,
                0,
                "g.jpg",
                "7",
                "",
                StageError("decode", "Truncated", "cut at byte 12"),
            ),
        ),
    )
    instances = BatchResults(
        "id-1",
        (InstanceResult("id-1", 2, 4, (Instance(5, 0.1 + 0.2, 1 / 3, 0.0, 2.5, 1e-7, 3, None),)),),
        SpillRef("instances", "/spill/instances/id-1.arrow", 1, "/data/s ü.tfrecord"),
    )
    semantic = BatchResults("id-1", (SemanticResult("id-1", 2, 4, (ClassMask(0, 8, "04"),)),))
    for value in (images, instances, semantic):
        decoded = decode_element(encode_element(value))
        assert decoded == value
        assert type(decoded) is type(value)
    # Floats are the same doubles, not rounded; nested tuples stay tuples.
    decoded = decode_element(encode_element(instances))
    assert decoded.results[0].instances[0].score == 0.1 + 0.2
    assert isinstance(decoded.results[0].instances, tuple)
    assert decode_element(encode_element(images)).images[0].ground_truth.semantic_png == (
        b"\x89PNG\x00\xff"
    )


def test_unknown_types_are_refused_both_ways() -> None:
    class Other(NamedTuple):
        x: int

    with pytest.raises(TypeError, match="Other is not an element type"):
        encode_element(BatchResults("b", (Other(1),)))
    with pytest.raises(TypeError, match="cannot encode a set"):
        encode_element(ClassMask(0, 1, {"rle"}))
    with pytest.raises(ValueError, match=r"unknown element type 'os\.system'"):
        decode_element(json.dumps({"__type__": "os.system", "command": "true"}).encode())
    with pytest.raises(ValueError, match="unknown element type None"):
        decode_element(b'{"batch_id": "b"}')
