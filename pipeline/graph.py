"""Assembles the Beam graph: shards in, Parquet tables out.

    Create(work units) -> ReadShards -+-> DecodeImages -+-> SemanticSegmentation --+
                                      |                 |     `-> spill files      |
                                      |                 +-> InstanceSegmentation --+
                                      |                 |     `-> spill files      |
                                      |                 +-> image info ------------+
                                      +-> shard summaries -------------------------+
                                  AssembleTableRows (join per batch) <-------------+
                                      `-> spill files
                                  -> WriteTables (one file per table and shard;
                                     copies the spill files' rows in)

Decode, both models and mask encoding fuse into one stage (no shuffle between
them), so decoded pixels never leave the worker that decoded them. That stage
also writes each batch's mask rows (the RLE strings, most of a run's bytes) to
spill files under `<tables_dir>/_spill/` (transforms/spill.py), and the join,
one element per batch and model, spills the batch's `images`, `class_counts`
and `errors` rows the same way. So the join's shuffle carries a few light
elements per batch and the writer's shuffle only references to files: Beam's
in-process runners hold a shuffle's whole input in memory, and peak memory
would otherwise grow with the image count. A batch's rows are keyed by its
work unit's source (`batch_partition_key`), so a batch's rows and its spill
files meet in one output shard. With --evaluate the join needs the RLE
strings, so such runs don't spill: they trade memory for the per-image metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import apache_beam as beam

from pipeline import schemas
from pipeline.options import RunConfig
from transforms.atomic_files import join
from transforms.decode import DecodeImages
from transforms.elements import UNIT_IMAGE_FILES, WorkUnit
from transforms.instance import InstanceSegmentation
from transforms.progress import ReportProgress
from transforms.read import ReadShards
from transforms.rows import AssembleTableRows
from transforms.semantic import SemanticSegmentation
from transforms.skip import SkipKnownImages
from transforms.spill import SPILL_DIR_NAME
from transforms.write import WriteTables

# Work units per output file when --num_output_shards is 0 (automatic). Large:
# a writer no longer holds its shard's rows as Python dicts (the mask rows come
# from spill files, copied in row groups), so a file's size costs it no memory,
# and fewer, larger files with ~100k-row row groups are what analytics engines
# read fastest. (Was 16 when the whole shard travelled through the shuffle.)
WORK_UNITS_PER_OUTPUT_SHARD = 256


def output_shard_count(config: RunConfig, num_work_units: int) -> int:
    """How many Parquet files each table gets."""
    if config.num_output_shards:
        return config.num_output_shards
    return max(1, math.ceil(num_work_units / WORK_UNITS_PER_OUTPUT_SHARD))


def spill_dir(tables_dir: str) -> str:
    """Where a run writing tables under `tables_dir` spills mask rows (never a table)."""
    return join(tables_dir, SPILL_DIR_NAME)


def known_total(units: Sequence[WorkUnit]) -> int | None:
    """Records the run will read, when known before reading (image files only)."""
    if all(unit.kind == UNIT_IMAGE_FILES for unit in units):
        return sum(len(unit.paths) for unit in units)
    return None


def build_pipeline(
    pipeline: beam.Pipeline,
    config: RunConfig,
    units: Sequence[WorkUnit],
    tables_dir: str,
    known_hashes: frozenset[str] = frozenset(),
) -> beam.PCollection:
    """Adds segbeam's transforms to `pipeline`; tables are written under `tables_dir`.

    `known_hashes` (with --skip_existing) are content hashes of images that earlier
    runs processed: those records are skipped before decoding.

    Unless `config.evaluate`, mask rows are spilled to `spill_dir(tables_dir)`,
    which the caller removes once the tables are written: `tables_dir` should be
    a run's staging directory, which the commit deletes.

    Returns:
      The PCollection of `WrittenFile`s, one per Parquet file committed.
    """
    if not units:
        raise ValueError("No work units: the input patterns matched no files.")
    read = (
        pipeline
        | "CreateWorkUnits" >> beam.Create(list(units))
        | "ReadShards" >> ReadShards(config.batch_size)
    )
    batches = read["batches"]
    extra_rows = []
    if config.skip_existing:
        skip = batches | "SkipKnownImages" >> SkipKnownImages(known_hashes)
        batches, extra_rows = skip["batches"], [skip["skipped"]]
    decoded = (
        batches
        | "DecodeImages" >> DecodeImages(config.max_image_pixels)
        | "ReportProgress" >> ReportProgress(known_total(units))
    )
    results = {"decoded": decoded, "summaries": read["summaries"]}
    class_names = config.class_names()
    # Settings both segmentation transforms share. Evaluation reads the RLE strings
    # at the join (image_metrics.evaluate_image), so evaluate runs don't spill.
    shared = {
        "intra_op_threads": config.tf_threads,
        "inter_op_threads": config.tf_threads,
        "spill_dir": None if config.evaluate else spill_dir(tables_dir),
        "class_names": class_names,
    }
    if config.semantic_spec is not None:
        results["semantic"] = decoded | "SemanticSegmentation" >> SemanticSegmentation(
            config.semantic_spec, config.batch_size, **shared
        )
    if config.instance_spec is not None:
        results["instance"] = decoded | "InstanceSegmentation" >> InstanceSegmentation(
            config.instance_spec, config.batch_size, config.score_threshold, **shared
        )
    rows = results | "AssembleTableRows" >> AssembleTableRows(
        class_names,
        semantic_enabled=config.semantic_spec is not None,
        instance_enabled=config.instance_spec is not None,
        evaluate=config.evaluate,
        spill_dir=shared["spill_dir"],
    )
    if extra_rows:
        rows = [rows, *extra_rows] | "FlattenSkipped" >> beam.Flatten()
    tables = schemas.tables_for(config.evaluate, bool(config.skip_existing))
    return rows | "WriteTables" >> WriteTables(
        tables_dir, output_shard_count(config, len(units)), tables
    )
