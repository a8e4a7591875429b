"""Variant 1, the bare limit: decode the images and call the models, nothing else.

    python -m benchmarks.bare_loop --input 'DIR/*.tfrecord' --result_json R.json \\
        [--mode loader|raw] [--semantic_model SPEC] [--instance_model SPEC] [--batch_size 8]

A plain loop over the shards' records: Pillow decodes each image (as the
pipeline does), and every `--batch_size` images go to both models.

  * `--mode loader` calls `models.loader.load_model(spec).predict`, the same
    code the pipeline runs: per-image resize to the model input, the model,
    and the TensorFlow post-processing back to each image's own resolution
    (logits -> int32 [H, W] class map; box masks -> pasted bool crops).
  * `--mode raw` calls the SavedModel signatures (weights frozen, as the
    loader's backend runs them: `models.adapters.saved_model`) directly on
    `tf.image.resize`d uint8 [B, h, w, 3] batches and stops at the raw
    outputs (logits, detections): the floor under any post-processing, which
    shows what the loader adds.

Nothing is encoded or written. The timed work starts before the models load.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from benchmarks.common import (
    VariantResult,
    add_common_flags,
    batches,
    cpu_clock,
    decode_rgb,
    read_encoded_images,
    shard_paths,
)
from benchmarks.tracing import TraceCounter
from models.adapters.saved_model import SavedModelBackend
from models.loader import load_model
from models.spec import ModelSpec, load_model_spec, shared_semantic_spec
from models.tf_runtime import configure_threads

MODE_LOADER = "loader"
MODE_RAW = "raw"

# A model call on a batch: uint8 RGB images of any sizes in, outputs discarded.
BatchFn = Callable[[Sequence[np.ndarray]], object]


def _loader_fn(spec: ModelSpec) -> BatchFn:
    return load_model(spec).predict


def _raw_fn(spec: ModelSpec) -> BatchFn:
    """The spec's SavedModel signature, fed stretched uint8 images at its input size."""
    if spec.format != "saved_model" or spec.input_size is None:
        raise ValueError(
            f"--mode raw needs a SavedModel with a fixed input_size; {spec.source} is "
            f"{spec.format} with input_size {spec.input_size}. Use --mode loader."
        )
    # The backend the loader runs: the signature with its weights frozen.
    backend = SavedModelBackend(spec.local_path, spec.signature)
    input_key = spec.input_key or "images"
    height, width = spec.input_size

    def run(images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        resized = [tf.image.resize(image, (height, width)) for image in images]
        batch = tf.saturate_cast(tf.round(tf.stack(resized)), tf.uint8)
        return backend.run(input_key, batch.numpy())

    return run


def _one_per_signature(specs: Sequence[ModelSpec]) -> list[ModelSpec]:
    """The specs with one kept per model signature: raw mode discards the outputs, so
    two specs reading one signature (semantic_shared.json and instance.json) cost
    one call, as the loader's shared backend makes them cost in loader mode."""
    kept: dict[tuple[str, str], ModelSpec] = {}
    for spec in specs:
        kept.setdefault((spec.local_path, spec.signature), spec)
    return list(kept.values())


def run_loop(
    paths: Sequence[str], model_fns: Sequence[BatchFn], batch_size: int, limit: int | None = None
) -> tuple[int, dict[str, float]]:
    """Decodes every record (the first `limit`, if given) and feeds batches to each model.

    Returns:
      (images processed, seconds spent in {"read_decode", "models"}).
    """
    seconds = {"read_decode": 0.0, "models": 0.0}
    count = 0
    pending = batches(itertools.islice(read_encoded_images(paths), limit), batch_size)
    while True:
        start = time.perf_counter()
        records = next(pending, None)
        if records is None:
            return count, seconds
        batch = [decode_rgb(encoded) for _, _, encoded in records]
        seconds["read_decode"] += time.perf_counter() - start
        start = time.perf_counter()
        for model_fn in model_fns:
            model_fn(batch)
        seconds["models"] += time.perf_counter() - start
        count += len(batch)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_flags(parser)
    parser.add_argument("--mode", choices=(MODE_LOADER, MODE_RAW), default=MODE_LOADER)
    parser.add_argument("--intra_op_threads", type=int, default=0, help="0 = TF's default.")
    parser.add_argument("--inter_op_threads", type=int, default=0, help="0 = TF's default.")
    parser.add_argument("--limit", type=int, default=None, help="Process only this many images.")
    args = parser.parse_args(argv)

    configure_threads(args.intra_op_threads, args.inter_op_threads)  # Before the first op.
    paths = shard_paths(args.input)
    # As the pipeline does (pipeline.options): with both bundled models, the semantic
    # maps come from the instance export's call.
    semantic_model = shared_semantic_spec(args.semantic_model, args.instance_model)
    specs = [
        spec
        for spec in (
            load_model_spec(semantic_model, "semantic"),
            load_model_spec(args.instance_model, "instance"),
        )
        if spec is not None
    ]
    if args.mode == MODE_RAW:
        specs = _one_per_signature(specs)
    counter = TraceCounter()
    start, cpu_start = time.perf_counter(), cpu_clock()
    with counter.install():
        build = _loader_fn if args.mode == MODE_LOADER else _raw_fn
        model_fns = [build(spec) for spec in specs]
        load_seconds = time.perf_counter() - start
        count, seconds = run_loop(paths, model_fns, args.batch_size, args.limit)
    total, cpu = time.perf_counter() - start, cpu_clock() - cpu_start
    VariantResult(
        variant=f"bare_{args.mode}",
        num_images=count,
        seconds=total,
        details={
            "model_load_seconds": load_seconds,
            "read_decode_seconds": seconds["read_decode"],
            "model_seconds": seconds["models"],
            "traces": counter.counts(),
        },
        cpu_seconds=cpu,
    ).write(args.result_json)
    print(f"bare_{args.mode}: {count} images in {total:.1f} s ({count / total:.2f} images/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
