"""What every benchmark variant shares: the generated dataset, the result file, the flags.

Each variant is a module run in its own process (`python -m benchmarks.<name>`)
that does its work, times it, and writes one `VariantResult` as JSON to
`--result_json`; `run_benchmarks` reads it back next to the process's
measured wall time and memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import resource
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.spec import BUNDLED_INSTANCE_SPEC, BUNDLED_SEMANTIC_SPEC

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BATCH_SIZE = 8  # The pipeline's --batch_size default.
DATASET_SEED = 6006  # Never used for training (models.train uses 10000+).
IMAGE_SIZE = (512, 512)
IMAGES_PER_SHARD = 25
_COMPLETE_MARKER = "_COMPLETE"


@dataclasses.dataclass(frozen=True)
class VariantResult:
    """One variant's own account of its run, written by the variant process.

    `seconds` is the work the variant timed itself: everything after its
    imports (model loading, reading, decoding, inference and, where the
    variant has them, post-processing and writing). `images_per_second` is
    `num_images / seconds`. `cpu_seconds` is the CPU time (all threads, and
    child processes that ended) spent in the same span: unlike wall time, it
    barely changes when other programs compete for the cores.
    """

    variant: str
    num_images: int
    seconds: float
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    cpu_seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.num_images / self.seconds if self.seconds > 0 else 0.0

    def write(self, path: str | Path) -> None:
        """Writes the result as JSON (the file `--result_json` names)."""
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def read(cls, path: str | Path) -> VariantResult:
        """Reads a result written by `write`."""
        raw = json.loads(Path(path).read_text())
        return cls(
            raw["variant"],
            raw["num_images"],
            raw["seconds"],
            raw.get("details", {}),
            raw.get("cpu_seconds", 0.0),
        )


def split_beam_flags(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the harness's own flags, Beam flags): Beam's come after a lone "--"."""
    if "--" not in argv:
        return list(argv), []
    split = list(argv).index("--")
    return list(argv[:split]), list(argv[split + 1 :])


def cpu_clock() -> float:
    """CPU seconds used so far by this process (all threads) and its waited-for children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def dataset_dir(work_dir: Path, num_images: int, size: tuple[int, int] | None) -> Path:
    """Where the generated dataset of `num_images` images of `size` is cached."""
    size_name = "varied" if size is None else f"{size[0]}x{size[1]}"
    return work_dir / "data" / f"{size_name}-jpeg-{num_images}-seed{DATASET_SEED}"


def ensure_dataset(
    work_dir: Path,
    num_images: int,
    size: tuple[int, int] | None = IMAGE_SIZE,
    images_per_shard: int = IMAGES_PER_SHARD,
) -> Path:
    """Generates (once; later calls reuse it) `num_images` synthetic JPEG scenes as shards.

    Args:
      work_dir: The harness's scratch directory.
      num_images: How many scenes.
      size: (height, width) of every image, or None for the generator's varied sizes.
      images_per_shard: Records per TFRecord shard; each shard is one work unit.

    Returns:
      The directory holding `scenes-*.tfrecord`.
    """
    from models.synthetic import write_shards  # Imports TensorFlow: only when generating.

    directory = dataset_dir(work_dir, num_images, size)
    if (directory / _COMPLETE_MARKER).is_file():
        return directory
    write_shards(directory, num_images, DATASET_SEED, images_per_shard, "jpeg", size)
    (directory / _COMPLETE_MARKER).write_text(f"{num_images}\n")
    return directory


def shard_pattern(directory: Path) -> str:
    """The glob matching a generated dataset's shards."""
    return str(directory / "scenes-*.tfrecord")


def shard_paths(pattern: str) -> list[str]:
    """The shards matching `pattern`, sorted; raises if there are none."""
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise ValueError(f"--input {pattern!r} matches no file; generate the shards first.")
    return paths


def _tfrecord_payloads(path: str) -> Iterator[bytes]:
    """The records of one TFRecord file, CRCs not checked (the bare limit's reader)."""
    with open(path, "rb") as stream:
        while header := stream.read(12):  # uint64 length, uint32 length CRC.
            (length,) = struct.unpack("<Q", header[:8])
            payload = stream.read(length)
            stream.read(4)  # The payload's CRC.
            yield payload


def read_encoded_images(paths: Sequence[str]) -> Iterator[tuple[str, int, bytes]]:
    """Yields (shard path, record index, image/encoded bytes) for every record, in order."""
    from tensorflow.core.example.example_pb2 import Example

    for path in paths:
        for index, record in enumerate(_tfrecord_payloads(path)):
            example = Example.FromString(record)
            yield path, index, example.features.feature["image/encoded"].bytes_list.value[0]


def decode_rgb(encoded: bytes) -> np.ndarray:
    """Decodes image bytes with Pillow (as the pipeline does): uint8 [H, W, 3] RGB."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(encoded)) as image:
        return np.asarray(image.convert("RGB"))


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """Flags every variant takes: the input, the models, the batch size, the result file."""
    parser.add_argument("--input", required=True, help="Glob of the TFRecord shards.")
    parser.add_argument("--semantic_model", default=BUNDLED_SEMANTIC_SPEC, help="Spec file.")
    parser.add_argument("--instance_model", default=BUNDLED_INSTANCE_SPEC, help="Spec file.")
    parser.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--result_json", required=True, help="Where to write the result.")


def batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most `size` items."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def table_stats(tables_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Size and layout of each table's .parquet files under `tables_dir`.

    Returns:
      table -> {"bytes", "files", "rows", "row_groups", "max_rows_per_group", "codecs"}.
    """
    import pyarrow.parquet as pq

    stats: dict[str, dict[str, Any]] = {}
    for table_dir in sorted(Path(tables_dir).iterdir()):
        files = sorted(f for f in table_dir.glob("*.parquet") if not f.name.startswith("."))
        if not table_dir.is_dir() or table_dir.name.startswith(("_", ".")) or not files:
            continue
        entry: dict[str, Any] = {"bytes": 0, "files": len(files), "rows": 0, "row_groups": 0}
        group_rows, codecs = [0], set()
        for path in files:
            metadata = pq.ParquetFile(path).metadata
            entry["bytes"] += path.stat().st_size
            entry["rows"] += metadata.num_rows
            entry["row_groups"] += metadata.num_row_groups
            for index in range(metadata.num_row_groups):
                group = metadata.row_group(index)
                group_rows.append(group.num_rows)
                codecs.update(group.column(c).compression for c in range(group.num_columns))
        entry["max_rows_per_group"] = max(group_rows)
        entry["codecs"] = sorted(codecs)
        stats[table_dir.name] = entry
    return stats


def environment_summary() -> Mapping[str, Any]:
    """The machine and library versions, for the report."""
    import platform

    import apache_beam
    import pyarrow

    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu_model = "unknown"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "python": platform.python_version(),
        "apache_beam": apache_beam.__version__,
        "pyarrow": pyarrow.__version__,
    }
