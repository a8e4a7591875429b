"""The instance export's model call alone: as loaded, and frozen as the loader runs it.

    python -m benchmarks.model_call [--model_dir models/bundled] [--num_images 64] \\
        [--batch_size 8] [--repeats 3] [--result_json R.json]

Renders `--num_images` 512x512 scenes (`models.synthetic_render`, seed 6006 as
the harness's shards), stretches them to the instance spec's input size and
times the instance SavedModel's signature on batches of `--batch_size`:

  * `signature`: the signature as `tf.saved_model.load` returns it (what a
    `RunInference` model handler for plain SavedModels calls);
  * `frozen`: `models.adapters.saved_model.SavedModelBackend.run`, the call the
    pipeline makes, with the weights frozen into constants.

Each variant runs once untimed (tracing and graph optimisation), then
`--repeats` timed passes over all images; the table gives the median pass in
milliseconds per image, wall clock and CPU (both cores count). It also reports
how far the two variants' outputs are apart. No decoding, resizing to each
image's size or encoding: `run_benchmarks` measures the whole pipeline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from benchmarks.common import cpu_clock
from models.adapters.saved_model import SavedModelBackend
from models.spec import TASK_INSTANCE, load_model_spec
from models.synthetic_render import scene_for_index
from models.train_validate import model_input

SEED = 6006  # The harness's shards' seed (benchmarks.common), never used in training.
IMAGE_SIZE = (512, 512)

# One batch in, the outputs as numpy arrays out.
CallFn = Callable[[np.ndarray], dict[str, np.ndarray]]


def _batches(num_images: int, batch_size: int, input_size: tuple[int, int]) -> list[np.ndarray]:
    """uint8 [b, h, w, 3] batches of rendered scenes stretched to input_size."""
    images = [
        model_input(scene_for_index(SEED, i, IMAGE_SIZE).image, input_size)[0]
        for i in range(num_images)
    ]
    return [tf.stack(images[i : i + batch_size]).numpy() for i in range(0, num_images, batch_size)]


def _time_passes(fn: CallFn, batches: Sequence[np.ndarray], repeats: int) -> dict[str, float]:
    """Median wall and CPU milliseconds per image over `repeats` passes, after one untimed."""
    for batch in batches:
        fn(batch)
    count = sum(int(batch.shape[0]) for batch in batches)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), cpu_clock()
        for batch in batches:
            fn(batch)
        walls.append((time.perf_counter() - wall) * 1000 / count)
        cpus.append((cpu_clock() - cpu) * 1000 / count)
    return {
        "wall_ms_per_image": statistics.median(walls),
        "cpu_ms_per_image": statistics.median(cpus),
    }


def _differences(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Largest absolute difference per output, and pixels whose semantic class differs."""
    out = {
        f"max_abs_diff_{key}": float(np.max(np.abs(a[key].astype(np.float64) - b[key])))
        for key in sorted(a)
    }
    if "logits" in a:
        out["semantic_pixels_differing"] = int(
            np.sum(a["logits"].argmax(-1) != b["logits"].argmax(-1))
        )
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", default="models/bundled")
    parser.add_argument("--num_images", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--result_json", default=None)
    args = parser.parse_args(argv)
    if args.num_images < 1 or args.batch_size < 1 or args.repeats < 1:
        parser.error("--num_images, --batch_size and --repeats must be at least 1")
    spec = load_model_spec(str(Path(args.model_dir) / "instance.json"), TASK_INSTANCE)
    if spec.format != "saved_model" or spec.input_size is None:
        parser.error(f"{spec.source}: needs a SavedModel with a fixed input_size")
    input_key = spec.input_key or "images"
    batches = _batches(args.num_images, args.batch_size, spec.input_size)

    signature = tf.saved_model.load(spec.local_path).signatures[spec.signature]
    backend = SavedModelBackend(spec.local_path, spec.signature)

    def as_loaded(batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = signature(**{input_key: tf.convert_to_tensor(batch)})
        return {name: value.numpy() for name, value in outputs.items()}

    variants: dict[str, CallFn] = {
        "signature": as_loaded,
        "frozen": lambda batch: backend.run(input_key, batch),
    }
    result: dict[str, object] = {
        "model": spec.local_path,
        "num_images": args.num_images,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "timings": {name: _time_passes(fn, batches, args.repeats) for name, fn in variants.items()},
        "differences": _differences(as_loaded(batches[0]), backend.run(input_key, batches[0])),
    }
    print("| variant | wall ms / image | CPU ms / image |\n|---|---:|---:|")
    for name, timing in result["timings"].items():
        print(f"| {name} | {timing['wall_ms_per_image']:.1f} | {timing['cpu_ms_per_image']:.1f} |")
    print(json.dumps(result["differences"], indent=2))
    if args.result_json:
        Path(args.result_json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
