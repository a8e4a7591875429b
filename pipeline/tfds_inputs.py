"""Planning `--input tfds:NAME[/CONFIG][:VERSION]:SPLIT`: one work unit per shard file.

The dataset must already be prepared in the TFDS data directory
(`--tfds_data_dir`, default TFDS's own: $TFDS_DATA_DIR or ~/tensorflow_datasets):
segbeam never downloads. The driver opens the prepared dataset from its files
alone (TFDS's read-only builder, so the dataset's builder code need not be
importable), checks the split and its shard files, and decides once which
features become segbeam's record fields (`TfdsFeatureKeys`, rules below).

Each shard file of the split becomes one `WorkUnit(UNIT_TFDS, (source,), TfdsShard)`.
`source` is `tfds://NAME[/CONFIG]:VERSION/SPLIT/<shard file name>`: it names
the data, not where it is stored, so image ids (hash of source and record index
within the shard) stay the same when the data directory moves.

Feature mapping rules (the first matching key wins; None when nothing matches):
  image        "image", "image_left"; else the only 3-channel uint8 Image feature.
  filename     Text feature "filename", "image/filename" or "file_name".
  source_id    Text or integer scalar "image/id", "image_id" or "id".
  semantic     1-channel uint8/uint16 Image "segmentation_mask", "segmentation_label"
               or "segmentation": a class id per pixel -> GroundTruth.semantic_png.
  instances    Sequence "objects" (or "instances") holding a 1-channel Image "mask"
               or "segmentation" (nonzero = the instance) and an integer or
               ClassLabel "label" -> GroundTruth instance masks and class ids.
What that gives for well-known TFDS datasets (checked against their feature
specs; the data itself cannot be downloaded here):
  segbeam_street_scenes   image, filename, semantic and instance ground truth.
  cityscapes/*            image_left, image_id; semantic ground truth from
                          segmentation_label (Cityscapes label ids) where the config has it.
  oxford_iiit_pet         image, file_name, semantic ground truth (trimap values 1-3).
  lvis                    image, image/id, instance ground truth (objects.segmentation).
  coco/2014, coco/2017    image, image/filename, image/id; no ground truth: TFDS's
                          COCO has boxes but no masks. coco/*_panoptic's RGB
                          panoptic_image is not converted to masks.
  voc/2007, voc/2012      image, image/filename; no ground truth (TFDS's VOC has
                          boxes only, no segmentation).
Ground-truth class ids are the dataset's own; `--evaluate` compares them with
the models' ids, which is meaningful only when both use the same label map (as
segbeam_street_scenes and the bundled models do).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import read_only_builder

from transforms.elements import UNIT_TFDS, TfdsFeatureKeys, TfdsShard, WorkUnit

TFDS_PREFIX = "tfds:"
BUNDLED_DATASET = "segbeam_street_scenes"

_IMAGE_KEYS = ("image", "image_left")
_FILENAME_KEYS = ("filename", "image/filename", "file_name")
_SOURCE_ID_KEYS = ("image/id", "image_id", "id")
_SEMANTIC_KEYS = ("segmentation_mask", "segmentation_label", "segmentation")
_OBJECTS_KEYS = ("objects", "instances")
_OBJECT_MASK_KEYS = ("mask", "segmentation")
_OBJECT_LABEL_KEYS = ("label",)

_NAME = r"[a-z0-9_]+"
_SPEC = re.compile(
    rf"^(?P<name>{_NAME})(?:/(?P<config>[\w.\-]+))?(?::(?P<version>\d+\.\d+\.\d+))?"
    r":(?P<split>[\w\-]+)$"
)


@dataclasses.dataclass(frozen=True)
class TfdsInput:
    """A parsed `tfds:NAME[/CONFIG][:VERSION]:SPLIT` input."""

    name: str
    config: str | None
    version: str | None  # None: the newest version prepared.
    split: str

    def __str__(self) -> str:
        config = f"/{self.config}" if self.config else ""
        version = f":{self.version}" if self.version else ""
        return f"{TFDS_PREFIX}{self.name}{config}{version}:{self.split}"


def is_tfds_pattern(pattern: str) -> bool:
    """Whether an `--input` pattern names a TFDS dataset rather than files."""
    return pattern.startswith(TFDS_PREFIX)


def parse_tfds_input(pattern: str) -> TfdsInput:
    """Parses `tfds:NAME[/CONFIG][:VERSION]:SPLIT`, e.g. `tfds:coco/2017:1.1.0:validation`.

    Raises:
      ValueError: if `pattern` does not have that form.
    """
    match = _SPEC.match(pattern[len(TFDS_PREFIX) :]) if is_tfds_pattern(pattern) else None
    if match is None:
        raise ValueError(
            f"--input pattern {pattern!r} is not a TFDS input; write "
            "tfds:NAME[/CONFIG][:VERSION]:SPLIT with a whole split name, e.g. "
            "tfds:segbeam_street_scenes:test or tfds:coco/2017:1.1.0:validation "
            "(split slices such as train[:10%] are not supported)"
        )
    return TfdsInput(**match.groupdict())


def default_data_dir() -> str:
    """TFDS's default data directory ($TFDS_DATA_DIR or ~/tensorflow_datasets)."""
    return str(epath.Path(tfds.core.constants.DATA_DIR).expanduser())


def plan_tfds_units(patterns: Sequence[str], data_dir: str | None) -> tuple[WorkUnit, ...]:
    """One work unit per shard file of each TFDS input's split, in pattern then file order.

    Args:
      patterns: `tfds:...` inputs; a dataset split named twice is planned once.
      data_dir: The TFDS data directory the datasets were prepared in; None for
        TFDS's default. Local paths are made absolute.

    Returns:
      The work units; each one's `paths` holds its `tfds://` source URI.

    Raises:
      ValueError: a malformed pattern, or a dataset, split or shard file that is
        not prepared in `data_dir` (with what to run to prepare it).
    """
    root = _absolute(data_dir or default_data_dir())
    units: dict[str, WorkUnit] = {}
    for pattern in patterns:
        for unit in _plan_one(parse_tfds_input(pattern), root):
            units.setdefault(unit.paths[0], unit)
    return tuple(units.values())


def tfds_source(dataset: str, config: str | None, version: str, split: str, file: str) -> str:
    """The `source` URI of the records of one shard file of a TFDS split."""
    config_part = f"/{config}" if config else ""
    return f"tfds://{dataset}{config_part}:{version}/{split}/{file}"


def _plan_one(spec: TfdsInput, data_dir: str) -> list[WorkUnit]:
    builder = _prepared_builder(spec, data_dir)
    if spec.split not in builder.info.splits:
        raise ValueError(
            f"TFDS dataset {builder.info.full_name} in {data_dir} has no split "
            f"{spec.split!r}; its splits are {sorted(builder.info.splits)}. Fix --input={spec}."
        )
    keys = feature_keys(builder.info.features, builder.info.full_name)
    config = builder.builder_config.name if builder.builder_config else None
    instructions = builder.info.splits[spec.split].file_instructions
    starts = itertools.accumulate((i.examples_in_shard for i in instructions), initial=0)
    units = []
    for instruction, start in zip(instructions, starts, strict=False):
        path = epath.Path(instruction.filename)
        if not path.exists():
            raise ValueError(
                f"shard file {path} of TFDS dataset {builder.info.full_name} (split "
                f"{spec.split!r}) is missing: the prepared copy in {data_dir} is incomplete. "
                f"Prepare it again ({_prepare_hint(spec, data_dir)})."
            )
        source = tfds_source(spec.name, config, str(builder.version), spec.split, path.name)
        shard = TfdsShard(
            str(builder.data_dir), str(path), spec.split, start, instruction.examples_in_shard, keys
        )
        units.append(WorkUnit(UNIT_TFDS, (source,), shard))
    return units


def _prepared_builder(spec: TfdsInput, data_dir: str) -> tfds.core.DatasetBuilder:
    """The dataset as prepared in `data_dir`, from its files (never downloads)."""
    name = f"{spec.name}/{spec.config}" if spec.config else spec.name
    try:
        return read_only_builder.builder_from_files(name, data_dir=data_dir, version=spec.version)
    except tfds.core.DatasetNotFoundError as e:
        raise ValueError(
            f"TFDS dataset {spec} is not prepared in the TFDS data directory {data_dir}, and "
            f"segbeam never downloads. {_prepare_hint(spec, data_dir)}, or pass the directory "
            f"it was prepared in as --tfds_data_dir. TFDS says: {e}"
        ) from e


def _prepare_hint(spec: TfdsInput, data_dir: str) -> str:
    config = f" --config {spec.config}" if spec.config else ""
    if spec.name == BUNDLED_DATASET:
        return f"Prepare it with: python -m models.tfds_street_scenes --data_dir {data_dir}{config}"
    name = f"{spec.name}/{spec.config}" if spec.config else spec.name
    return (
        f"Prepare it with: tfds build {name} --data_dir {data_dir} (on a machine that can "
        "download it, or with the manual files the dataset's TFDS page asks for)"
    )


def feature_keys(features: tfds.features.FeaturesDict, dataset: str) -> TfdsFeatureKeys:
    """Decides which features of `dataset` become segbeam's fields (rules in the module doc).

    Raises:
      ValueError: if no feature can serve as the input image.
    """
    objects = _first(features, _OBJECTS_KEYS, _is_sequence_of_dict)
    inner = features[objects].feature if objects else None
    object_mask = _first(inner, _OBJECT_MASK_KEYS, _is_mask_image) if inner else None
    object_label = _first(inner, _OBJECT_LABEL_KEYS, _is_integer_scalar) if inner else None
    has_instances = object_mask is not None and object_label is not None
    return TfdsFeatureKeys(
        image=_image_key(features, dataset),
        filename=_first(features, _FILENAME_KEYS, _is_text),
        source_id=_first(features, _SOURCE_ID_KEYS, _is_id),
        semantic=_first(features, _SEMANTIC_KEYS, _is_mask_image),
        objects=objects if has_instances else None,
        object_mask=object_mask if has_instances else None,
        object_label=object_label if has_instances else None,
    )


def _image_key(features: tfds.features.FeaturesDict, dataset: str) -> str:
    key = _first(features, _IMAGE_KEYS, _is_rgb_image)
    if key is not None:
        return key
    rgb = [k for k, f in features.items() if _is_rgb_image(f)]
    if len(rgb) == 1:
        return rgb[0]
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    raise ValueError(
        f"TFDS dataset {dataset} has no feature segbeam can read as the input image: it "
        f"looks for a 3-channel uint8 Image named {' or '.join(_IMAGE_KEYS)}, or a single "
        f"such Image feature; the dataset's Image features are {images or 'none'}. "
        "Read another dataset, or export this one's images to files or TFRecords."
    )


def _first(
    features: tfds.features.FeaturesDict,
    keys: Sequence[str],
    accepts: Callable[[tfds.features.FeatureConnector], bool],
) -> str | None:
    return next((k for k in keys if k in features and accepts(features[k])), None)


def _is_rgb_image(feature: tfds.features.FeatureConnector) -> bool:
    return (
        isinstance(feature, tfds.features.Image)
        and feature.shape[-1] in (3, None)
        and feature.np_dtype == np.uint8
    )


def _is_mask_image(feature: tfds.features.FeatureConnector) -> bool:
    return (
        isinstance(feature, tfds.features.Image)
        and feature.shape[-1] == 1
        and feature.np_dtype in (np.uint8, np.uint16)
    )


def _is_text(feature: tfds.features.FeatureConnector) -> bool:
    return isinstance(feature, tfds.features.Text)


def _is_integer_scalar(feature: tfds.features.FeatureConnector) -> bool:
    return (
        isinstance(feature, tfds.features.Tensor)
        and feature.shape == ()
        and np.issubdtype(feature.np_dtype, np.integer)
    )


def _is_id(feature: tfds.features.FeatureConnector) -> bool:
    return _is_text(feature) or _is_integer_scalar(feature)


def _is_sequence_of_dict(feature: tfds.features.FeatureConnector) -> bool:
    return isinstance(feature, tfds.features.Sequence) and isinstance(
        feature.feature, tfds.features.FeaturesDict
    )


def _absolute(data_dir: str) -> str:
    # Workers read the same directory: a relative local path would resolve
    # against each worker's own working directory.
    path = epath.Path(data_dir).expanduser()
    return str(path if "://" in data_dir else path.resolve())
