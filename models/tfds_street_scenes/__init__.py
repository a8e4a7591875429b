"""The bundled street scenes as a TensorFlow Datasets dataset: `segbeam_street_scenes`.

Importing this package registers the builder with TFDS. Prepare a copy with

    python -m models.tfds_street_scenes --data_dir DIR [--config tiny|small|standard]

then read it with `run_pipeline.py --input tfds:segbeam_street_scenes/CONFIG:test
--tfds_data_dir DIR` (the reader needs only the prepared files, not this code).
"""

from models.tfds_street_scenes.builder import (
    DATASET_NAME,
    DATASET_VERSION,
    SMALL,
    STANDARD,
    TEST_SEED,
    TINY,
    TRAIN_SEED,
    SegbeamStreetScenes,
    StreetScenesConfig,
    project_class_names,
    scene_example,
    scene_filename,
)
from models.tfds_street_scenes.prepare import prepare

__all__ = [
    "DATASET_NAME",
    "DATASET_VERSION",
    "SMALL",
    "STANDARD",
    "TEST_SEED",
    "TINY",
    "TRAIN_SEED",
    "SegbeamStreetScenes",
    "StreetScenesConfig",
    "prepare",
    "project_class_names",
    "scene_example",
    "scene_filename",
]
