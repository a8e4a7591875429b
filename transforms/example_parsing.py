"""Parsing one TFRecord payload as a `tf.train.Example` with Object Detection API keys.

Only the keys segbeam uses are read:

    image/encoded                      bytes, exactly one value (required)
    image/filename                     bytes, at most one value
    image/source_id                    bytes, at most one value
    image/segmentation/class/encoded   bytes, at most one value: PNG of class ids
    image/object/mask                  bytes list: one full-image PNG per instance
    image/object/class/label           int64 list: one class id per instance
"""

from __future__ import annotations

from typing import NamedTuple

from google.protobuf.message import DecodeError
from tensorflow.core.example import example_pb2, feature_pb2

from transforms.elements import STAGE_READ, GroundTruth, StageError

IMAGE_ENCODED = "image/encoded"
IMAGE_FILENAME = "image/filename"
IMAGE_SOURCE_ID = "image/source_id"
SEMANTIC_ENCODED = "image/segmentation/class/encoded"
INSTANCE_MASKS = "image/object/mask"
INSTANCE_LABELS = "image/object/class/label"

# error_type values, as they appear in the `errors` table.
INVALID_EXAMPLE = "InvalidExample"
MISSING_FEATURE = "MissingFeature"
WRONG_FEATURE_TYPE = "WrongFeatureType"
INVALID_FEATURE = "InvalidFeature"

_BYTES = "bytes_list"
_INT64 = "int64_list"

_FeatureMap = dict[str, feature_pb2.Feature]


class ParsedExample(NamedTuple):
    """What segbeam takes from one `tf.train.Example`."""

    encoded: bytes  # image/encoded: the encoded image file (JPEG, PNG, ...).
    filename: str  # image/filename, or "".
    source_id: str  # image/source_id, or "".
    ground_truth: GroundTruth | None  # None when no ground-truth key is present.


class _FeatureError(ValueError):
    """A feature is missing or malformed; carries the `errors` table's error_type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def parse_example(data: bytes) -> ParsedExample | StageError:
    """Parses a serialized `tf.train.Example`.

    Args:
      data: One TFRecord payload.

    Returns:
      The parsed fields, or a read-stage `StageError` (InvalidExample,
      MissingFeature, WrongFeatureType or InvalidFeature) naming the feature at fault.
    """
    try:
        example = example_pb2.Example.FromString(data)
    except DecodeError as e:
        message = (
            f"the record ({len(data)} bytes) is not a serialized tf.train.Example ({e}); "
            "write shards with tf.io.TFRecordWriter(example.SerializeToString())"
        )
        return StageError(STAGE_READ, INVALID_EXAMPLE, message)
    features = example.features.feature
    try:
        return ParsedExample(
            encoded=_required_single_bytes(features, IMAGE_ENCODED),
            filename=_text(_optional_single_bytes(features, IMAGE_FILENAME)),
            source_id=_text(_optional_single_bytes(features, IMAGE_SOURCE_ID)),
            ground_truth=_ground_truth(features),
        )
    except _FeatureError as e:
        return StageError(STAGE_READ, e.error_type, str(e))


def _ground_truth(features: _FeatureMap) -> GroundTruth | None:
    if not any(key in features for key in (SEMANTIC_ENCODED, INSTANCE_MASKS, INSTANCE_LABELS)):
        return None
    masks = tuple(_values(features, INSTANCE_MASKS, _BYTES, "PNG-encoded instance masks"))
    labels = tuple(_values(features, INSTANCE_LABELS, _INT64, "instance class ids"))
    if masks and len(masks) != len(labels):
        raise _FeatureError(
            INVALID_FEATURE,
            f"{INSTANCE_MASKS!r} holds {len(masks)} masks but {INSTANCE_LABELS!r} holds "
            f"{len(labels)} labels; each instance mask needs exactly one class label",
        )
    return GroundTruth(
        semantic_png=_optional_single_bytes(features, SEMANTIC_ENCODED),
        instance_mask_pngs=masks,
        instance_class_ids=labels,
    )


def _required_single_bytes(features: _FeatureMap, key: str) -> bytes:
    if key not in features:
        raise _FeatureError(
            MISSING_FEATURE,
            f"the tf.train.Example has no {key!r} feature; it must hold the encoded image "
            "as a bytes_list with one value",
        )
    value = _optional_single_bytes(features, key)
    if value is None:
        raise _FeatureError(
            MISSING_FEATURE,
            f"feature {key!r} is empty; it must hold the encoded image as a bytes_list "
            "with one value",
        )
    return value


def _optional_single_bytes(features: _FeatureMap, key: str) -> bytes | None:
    values = _values(features, key, _BYTES, "one bytes value")
    if len(values) > 1:
        raise _FeatureError(
            INVALID_FEATURE, f"feature {key!r} holds {len(values)} values; expected one"
        )
    return values[0] if values else None


def _values(features: _FeatureMap, key: str, kind: str, meaning: str) -> list[bytes] | list[int]:
    """The values of a list feature of the given kind; [] when the key is absent."""
    if key not in features:
        return []
    feature = features[key]
    actual = feature.WhichOneof("kind")
    if actual is None:
        return []  # A Feature with no list set is how TF encodes an empty value.
    if actual != kind:
        raise _FeatureError(
            WRONG_FEATURE_TYPE,
            f"feature {key!r} is a {actual}; expected a {kind} ({meaning})",
        )
    return list(getattr(feature, kind).value)


def _text(value: bytes | None) -> str:
    # Names are informational; an undecodable byte must not cost the image.
    return value.decode("utf-8", errors="replace") if value is not None else ""
