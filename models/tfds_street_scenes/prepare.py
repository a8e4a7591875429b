"""Preparing `segbeam_street_scenes` into a TFDS data directory, offline.

python -m models.tfds_street_scenes --data_dir DIR [--config tiny|small|standard]
    [--num_shards N]
"""

from __future__ import annotations

import argparse
import os

import tensorflow_datasets as tfds

from models.tfds_street_scenes.builder import (
    BUILDER_CONFIG_NAMES,
    SegbeamStreetScenes,
    StreetScenesConfig,
)


def prepare(
    data_dir: str,
    config: str | StreetScenesConfig = "tiny",
    num_shards: int | None = None,
) -> SegbeamStreetScenes:
    """Renders the dataset into `data_dir` (a no-op if that version is already there).

    Args:
      data_dir: TFDS data directory; the dataset lands in
        `data_dir/segbeam_street_scenes/<config name>/<version>/`.
      config: A named config ("tiny", "small", "standard") or a custom
        `StreetScenesConfig` (its name becomes the config directory).
      num_shards: Files per split; None lets TFDS choose (one for small splits).

    Returns:
      The prepared builder.
    """
    builder = SegbeamStreetScenes(config=config, data_dir=os.path.abspath(data_dir))
    download_config = tfds.download.DownloadConfig(
        # Never look for a pre-built copy on GCS: there is none, and runs are offline.
        try_download_gcs=False,
        num_shards=num_shards,
    )
    builder.download_and_prepare(download_config=download_config)
    return builder


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="TFDS data directory to write into.")
    parser.add_argument("--config", choices=BUILDER_CONFIG_NAMES, default="tiny")
    parser.add_argument(
        "--num_shards", type=int, default=None, help="Files per split. Default: TFDS decides."
    )
    args = parser.parse_args(argv)
    builder = prepare(args.data_dir, args.config, args.num_shards)
    splits = ", ".join(f"{name}: {info.num_examples}" for name, info in builder.info.splits.items())
    print(f"Prepared {builder.info.full_name} in {builder.data_dir} ({splits} examples)")
