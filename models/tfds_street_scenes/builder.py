"""The bundled street-scene generator as a TensorFlow Datasets builder.

Dataset `segbeam_street_scenes`: scenes from `models.synthetic_render`, with
their ground truth, as a TFDS dataset that `--input tfds:segbeam_street_scenes...`
reads like any other prepared TFDS dataset. Nothing is downloaded: preparing
renders the scenes.

Features of one example:
  image:              Image, uint8 [H, W, 3], stored as JPEG (Pillow, quality 90).
  segmentation_mask:  Image, uint8 [H, W, 1], stored as PNG: the class id of every pixel.
  objects:            Sequence of
    mask:               Image, uint8 [H, W, 1], stored as PNG: 1 on the instance's
                        visible pixels, 0 elsewhere;
    label:              ClassLabel with the project's names (models/bundled/labels.txt).
  filename:           Text, "scene_<seed>_<index>.jpg".

Splits: `train` renders `scene_for_index(TRAIN_SEED, i)` and `test`
`scene_for_index(TEST_SEED, i)`, i = 0, 1, ...; example i of a split is its
i-th record (shuffling is disabled), so the dataset is the same bytes on every
machine that prepares it.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from models.labels import read_label_file
from models.synthetic import LABELS_PATH
from models.synthetic_render import Scene, scene_for_index

DATASET_NAME = "segbeam_street_scenes"
DATASET_VERSION = "1.0.0"  # Of the generated data: bump when any scene pixel changes.
# The seed of the bundled models' training scenes (models.train's TRAIN_SEED_BASE
# with --seed 0) and the held-out evaluation seed models.train never trains on.
TRAIN_SEED = 10_000
TEST_SEED = 424_242
JPEG_QUALITY = 90


def project_class_names() -> list[str]:
    """The project label map as a list: element i names class id i."""
    labels = read_label_file(LABELS_PATH)
    return [labels[class_id] for class_id in range(len(labels))]


@dataclasses.dataclass(eq=False)
class StreetScenesConfig(tfds.core.BuilderConfig):
    """How many scenes each split holds, and at what size.

    Attributes:
      num_train: Scenes in the `train` split (>= 1).
      num_test: Scenes in the `test` split (>= 1).
      height, width: Every image's size in pixels; 0 and 0 draw a size per
        scene from the generator's own distribution (sides in [256, 1024]).
    """

    num_train: int = 1
    num_test: int = 1
    height: int = 0
    width: int = 0

    def __post_init__(self) -> None:
        if self.num_train < 1 or self.num_test < 1:
            raise ValueError(
                f"config {self.name!r}: num_train and num_test must be >= 1, got "
                f"{self.num_train} and {self.num_test}"
            )
        if (self.height > 0) != (self.width > 0) or self.height < 0 or self.width < 0:
            raise ValueError(
                f"config {self.name!r}: give both height and width (> 0), or neither (0) to "
                f"draw a size per scene; got height={self.height}, width={self.width}"
            )

    def size(self) -> tuple[int, int] | None:
        """(height, width) to force on every scene, or None for drawn sizes."""
        return (self.height, self.width) if self.height and self.width else None


TINY = StreetScenesConfig(
    name="tiny",
    description="8 train + 4 test scenes of 96x128 pixels: prepares in seconds; for tests "
    "and smoke runs.",
    num_train=8,
    num_test=4,
    height=96,
    width=128,
)
SMALL = StreetScenesConfig(
    name="small",
    description="400 train + 100 test scenes of 256x256 pixels.",
    num_train=400,
    num_test=100,
    height=256,
    width=256,
)
STANDARD = StreetScenesConfig(
    name="standard",
    description="2000 train + 500 test scenes of varied size and aspect ratio, sides in "
    "[256, 1024] pixels: the distribution the bundled models are trained on.",
    num_train=2000,
    num_test=500,
)

BUILDER_CONFIG_NAMES = tuple(c.name for c in (TINY, SMALL, STANDARD))


class SegbeamStreetScenes(tfds.core.GeneratorBasedBuilder):
    """Procedural street scenes with semantic and instance ground truth."""

    VERSION = tfds.core.Version(DATASET_VERSION)
    RELEASE_NOTES = {DATASET_VERSION: "Initial release."}  # noqa: RUF012 (TFDS reads a class dict)
    BUILDER_CONFIGS = [TINY, SMALL, STANDARD]  # noqa: RUF012 (TFDS reads a class list)

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        """This module: where TFDS looks for the builder's (absent) checksums file.

        TFDS 4.9.10's own lookup touches the `importlib_resources` backport,
        which is not installed (Python 3.11 has `importlib.resources`), and fails.
        """
        return epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        # uint8 [H, W, 1] stored as PNG: class ids, or an instance's 0/1 mask.
        mask = tfds.features.Image(shape=(None, None, 1), encoding_format="png")
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                    "segmentation_mask": mask,
                    "objects": tfds.features.Sequence(
                        {
                            "mask": mask,
                            "label": tfds.features.ClassLabel(names=project_class_names()),
                        }
                    ),
                    "filename": tfds.features.Text(),
                }
            ),
            # Record i of a split is scene i, so records are stable across machines.
            disable_shuffling=True,
        )

    def _split_generators(
        self, dl_manager: tfds.download.DownloadManager
    ) -> dict[str, Iterator[tuple[int, dict[str, Any]]]]:
        del dl_manager  # Everything is rendered; nothing is downloaded.
        config = self.builder_config
        return {
            "train": self._generate_examples(TRAIN_SEED, config.num_train),
            "test": self._generate_examples(TEST_SEED, config.num_test),
        }

    def _generate_examples(self, seed: int, count: int) -> Iterator[tuple[int, dict[str, Any]]]:
        size = self.builder_config.size()
        for index in range(count):
            yield index, scene_example(scene_for_index(seed, index, size), seed, index)


def scene_example(scene: Scene, seed: int, index: int) -> dict[str, Any]:
    """One scene as the builder's feature dict, images already encoded (bytes)."""
    return {
        "image": _encode(scene.image, "JPEG"),
        "segmentation_mask": _encode(scene.class_map, "PNG"),
        "objects": {
            "mask": [_encode(m.astype(np.uint8), "PNG") for m in scene.instance_masks],
            "label": [int(c) for c in scene.instance_class_ids],
        },
        "filename": scene_filename(seed, index),
    }


def scene_filename(seed: int, index: int) -> str:
    """The `filename` feature of scene `index` of the split with `seed`."""
    return f"scene_{seed}_{index:06d}.jpg"


def _encode(array: np.ndarray, image_format: str) -> bytes:
    """uint8 [H, W, 3] (RGB) or [H, W] (grey) -> JPEG or PNG file bytes."""
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY} if image_format == "JPEG" else {}
    Image.fromarray(array).save(buffer, format=image_format, **options)
    return buffer.getvalue()
