"""Variant 3, the peer: the same job as a Beam user would build it with RunInference.

    python -m benchmarks.runinference_peer --input 'DIR/*.tfrecord' --output OUT \\
        --result_json R.json [--semantic_model SPEC] [--instance_model SPEC] [--batch_size 8]

    ReadAllFromTFRecord -> decode + resize -> RunInference(semantic) -> class RLEs ----+
                                           -> RunInference(instance) -> instance RLEs -+
                                           -> keys ------------------------------------+
                                                    CoGroupByKey -> images, class_counts
    each table -> WriteToParquet (zstd)

When both specs read one model signature (the bundled models: the instance
export also returns the semantic logits, `models.export`), one RunInference
feeds both row builders.

Model inputs, thresholds and label mapping come from the same spec files as
the pipeline's, and the rows follow the same schemas (`pipeline.schemas`), so
both jobs produce the same tables (`benchmarks.compare_outputs` checks).
What the peer leaves out, and the pipeline does on top: error rows (a bad
record fails the peer's whole job), the ledger check, the shards and errors
tables, record indexes. It runs on the same runner as the pipeline (the FnApiRunner, via
`pipeline.runners.resolve_runner`, which avoids DirectRunner's offline Prism
download attempt).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from benchmarks.common import (
    VariantResult,
    add_common_flags,
    cpu_clock,
    shard_paths,
    table_stats,
)
from benchmarks.peer_handler import SavedModelSignatureHandler
from benchmarks.peer_rows import decode_and_resize, instance_rows, joined_rows, semantic_rows
from models.spec import ModelSpec, load_model_spec, shared_semantic_spec
from pipeline import schemas
from pipeline.runners import resolve_runner


def _handler(spec: ModelSpec, batch_size: int) -> KeyedModelHandler:
    return KeyedModelHandler(
        SavedModelSignatureHandler(
            spec.local_path, spec.signature, spec.input_key or "images", batch_size
        )
    )


class PeerTables(beam.PTransform):
    """The peer job up to its rows: shard paths in, one PCollection of row dicts per table.

    Input: `PCollection[str]` of TFRecord shard paths.
    Output: {"images", "class_counts", "semantic_masks", "instances"}: each a
    `PCollection[dict]` of rows in that table's `pipeline.schemas` schema.
    """

    def __init__(self, semantic: ModelSpec, instance: ModelSpec, batch_size: int) -> None:
        super().__init__()
        if semantic.input_size != instance.input_size or semantic.input_size is None:
            raise ValueError(
                "The peer feeds both models one resized input: give both specs the same "
                f"input_size (got {semantic.input_size} and {instance.input_size})."
            )
        self._semantic = semantic
        self._instance = instance
        self._batch_size = batch_size
        self._names = {**semantic.class_names, **instance.class_names}

    def expand(self, paths: beam.PCollection[str]) -> dict[str, beam.PCollection]:
        names, instance = self._names, self._instance
        inputs = (
            paths
            | "Read" >> beam.io.ReadAllFromTFRecord(with_filename=True)
            | "DecodeResize" >> beam.Map(decode_and_resize, input_size=self._semantic.input_size)
        )
        semantic_results = inputs | "RunSemantic" >> RunInference(
            _handler(self._semantic, self._batch_size)
        )
        # One model serving both tasks (the bundled instance export also returns the
        # semantic logits): a Beam user runs it once and reads both from its results.
        shared = (self._semantic.local_path, self._semantic.signature) == (
            instance.local_path,
            instance.signature,
        )
        instance_results = (
            semantic_results
            if shared
            else inputs | "RunInstance" >> RunInference(_handler(instance, self._batch_size))
        )
        semantic_out = semantic_results | "SemanticRows" >> beam.Map(
            semantic_rows, class_names=names, upsampling=self._semantic.upsampling
        )
        instance_out = instance_results | "InstanceRows" >> beam.Map(
            instance_rows,
            class_names=names,
            thresholds=(instance.score_threshold, instance.mask_threshold),
            label_offset=instance.label_offset,
            upsampling=instance.upsampling,
        )
        keys = inputs | "Keys" >> beam.Map(
            lambda element: (element[0].image_id, element[0]._replace(pixels=None))
        )
        joined = (
            {"key": keys, "semantic": semantic_out, "instance": instance_out}
            | "Join" >> beam.CoGroupByKey()
            | "JoinedRows" >> beam.FlatMap(joined_rows, class_names=names)
        )
        tables = {
            table: joined
            | f"Select_{table}" >> beam.Filter(lambda row, t=table: row[0] == t)
            | f"Rows_{table}" >> beam.Values()
            for table in ("images", "class_counts")
        }
        tables["semantic_masks"] = semantic_out | "MaskRows" >> beam.FlatMap(
            lambda element: element[1].mask_rows
        )
        tables["instances"] = instance_out | "InstanceRowsOnly" >> beam.FlatMap(
            lambda element: element[1].rows
        )
        return tables


def build_peer(
    pipeline: beam.Pipeline,
    paths: Sequence[str],
    semantic: ModelSpec,
    instance: ModelSpec,
    batch_size: int,
    output: Path,
) -> None:
    """Adds the peer job to `pipeline`; tables go to `output/<table>/part-*.parquet`."""
    tables = (
        pipeline
        | "Shards" >> beam.Create(list(paths))
        | "PeerTables" >> PeerTables(semantic, instance, batch_size)
    )
    for table, rows in tables.items():
        _ = rows | f"Write_{table}" >> beam.io.WriteToParquet(
            str(output / table / "part"),
            schemas.TABLES[table],
            codec="zstd",
            file_name_suffix=".parquet",
        )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_flags(parser)
    parser.add_argument("--output", required=True, help="Directory for the tables.")
    args = parser.parse_args(argv)

    start, cpu_start = time.perf_counter(), cpu_clock()
    # As the pipeline does (pipeline.options): with both bundled models, the semantic
    # maps come from the instance export.
    semantic = load_model_spec(
        shared_semantic_spec(args.semantic_model, args.instance_model), "semantic"
    )
    instance = load_model_spec(args.instance_model, "instance")
    if semantic is None or instance is None:
        raise ValueError("The peer runs both models: give --semantic_model and --instance_model.")
    paths = shard_paths(args.input)
    output = Path(args.output)
    options = PipelineOptions([])
    with beam.Pipeline(runner=resolve_runner(options), options=options) as pipeline:
        build_peer(pipeline, paths, semantic, instance, args.batch_size, output)
    seconds, cpu = time.perf_counter() - start, cpu_clock() - cpu_start
    tables = table_stats(output)
    num_images = tables["images"]["rows"] if "images" in tables else 0
    VariantResult(
        variant="runinference_peer",
        num_images=num_images,
        seconds=seconds,
        details={"table_stats": tables, "output_dir": str(output)},
        cpu_seconds=cpu,
    ).write(args.result_json)
    print(
        f"runinference_peer: {num_images} images in {seconds:.1f} s "
        f"({num_images / seconds:.2f} images/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
