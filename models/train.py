"""Trains, exports and validates both bundled models on synthetic street scenes.

    python -m models.train --output DIR --seed 0 [--steps N] [--input_shape 256x512]

`--init_from DIR` starts both networks from an earlier export's weights instead
of random ones: a fine-tuning stage, given another `--seed` so that it renders
scenes the stages before never saw. The networks are fully convolutional, so a
stage may train (and export) at another `--input_shape` than the one before.
The bundled models are eleven stages, five at 256x512 and the last six at 320x640;
their commands, one per stage, are in models/MODEL_CARD.md, "Training data and command".

Training scenes are `scene_for_index(10_000 + seed, i)` for i < --num_scenes,
rendered once in memory at their native varied sizes and stretched to the
model input (--input_shape; default INPUT_SHAPE, 320x640, `models.net_geometry`).
Validation uses seed 5_000; the held-out evaluation seed 424242 is never
touched. CPU only; both cores are used.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from models.net_geometry import INPUT_SHAPE, check_input_shape, parse_input_shape
from models.train_data import TrainingSet, augment, instance_targets, render_training_set

TRAIN_SEED_BASE = 10_000


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters (all recorded in the model card)."""

    steps: int = 3000  # ~0.62 s a step on 2 quiet cores: the recipe takes ~35 min.
    batch_size: int = 16
    crop: int = 192  # Training crop side, inside the model input below.
    num_scenes: int = 8000
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    val_images: int = 100
    # A pedestrian cell's weight in the offset loss against a vehicle cell's
    # (`train_losses.class_offset_weight`); 1.0 for the first eight stages, 4.0 for the last three.
    pedestrian_offset_weight: float = 1.0
    # (height, width) scenes are stretched to, and the exports' input.
    input_shape: tuple[int, int] = INPUT_SHAPE

    def __post_init__(self) -> None:
        check_input_shape(self.input_shape)
        if self.pedestrian_offset_weight <= 0:
            raise ValueError(
                f"pedestrian_offset_weight must be positive, got {self.pedestrian_offset_weight}."
            )
        if self.crop > min(self.input_shape):
            raise ValueError(
                f"crop {self.crop} does not fit the {self.input_shape[0]}x{self.input_shape[1]} "
                "input; give a smaller --crop or a larger --input_shape."
            )


def _learning_rate(config: TrainConfig) -> tf.keras.optimizers.schedules.LearningRateSchedule:
    cosine = tf.keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(config.steps - config.warmup_steps, 1),
        warmup_target=config.learning_rate,
        warmup_steps=config.warmup_steps,
        alpha=0.02,
    )
    return cosine


def _make_step(semantic: tf.keras.Model, instance: tf.keras.Model, config: TrainConfig):  # noqa: ANN202
    """Builds the compiled joint train step (one batch, both networks)."""
    from models.networks import fuse_thing_logits
    from models.train_losses import instance_loss, semantic_loss

    opt_sem = tf.keras.optimizers.AdamW(_learning_rate(config), weight_decay=config.weight_decay)
    opt_ins = tf.keras.optimizers.AdamW(_learning_rate(config), weight_decay=config.weight_decay)

    @tf.function(autograph=False)  # No Python control flow; also never re-reads source.
    def step(
        images: tf.Tensor, class_maps: tf.Tensor, targets: dict[str, tf.Tensor]
    ) -> dict[str, tf.Tensor]:
        with tf.GradientTape(persistent=True) as tape:
            sem_out = semantic(images, training=True)
            sem = semantic_loss(sem_out, class_maps)
            # The export fuses the semantic evidence into the thing segmentation
            # (networks.fuse_thing_logits), so the thing head trains on the fused
            # logits: it learns what the semantic network misses. The semantic
            # network's own loss alone trains it (stop_gradient).
            fused = fuse_thing_logits(
                instance(images, training=True), tf.stop_gradient(sem_out["logits"])
            )
            ins = instance_loss(fused, targets, config.pedestrian_offset_weight)
        for net, opt, loss in ((semantic, opt_sem, sem), (instance, opt_ins, ins["total"])):
            grads = tape.gradient(loss, net.trainable_variables)
            opt.apply_gradients(zip(grads, net.trainable_variables, strict=True))
        return {"semantic": sem, **{f"instance_{k}": v for k, v in ins.items()}}

    return step


def _batch(data: TrainingSet, rng: np.random.Generator, config: TrainConfig) -> tuple:
    index = np.sort(rng.choice(len(data.images), size=config.batch_size, replace=False))
    batch = augment(TrainingSet(*(a[index] for a in data)), rng, config.crop)
    t = instance_targets(batch.class_maps, batch.instance_maps)
    targets = {
        "thing": tf.constant(t.thing),
        "heatmap": tf.constant(t.heatmap),
        "offsets": tf.constant(t.offsets),
        "offset_weight": tf.constant(t.offset_weight),
    }
    return tf.constant(batch.images), tf.constant(batch.class_maps), targets


def _prefetched_batches(
    data: TrainingSet, rng: np.random.Generator, config: TrainConfig
) -> Iterator[tuple]:
    """`config.steps` batches of `_batch`, each made on one background thread while the
    step before it runs (crops and targets are numpy work that would otherwise leave
    the cores idle between steps). One thread draws from `rng` in order, so the
    batches are those of a plain loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_batch, data, rng, config)
        for i in range(config.steps):
            batch = pending.result()
            if i + 1 < config.steps:
                pending = pool.submit(_batch, data, rng, config)
            yield batch


def train(
    output: Path, seed: int, config: TrainConfig, work_dir: Path, init_from: Path | None = None
) -> dict:
    """Runs the whole recipe; returns a summary dict (also written to output/training_log.json).

    Trained weights are also saved to `work_dir` before export, so a failed
    export or validation never costs the training. With `init_from`, both
    networks start from that export's weights (`restore_exported_weights`).
    """
    from models.export import restore_exported_weights
    from models.networks import instance_net, semantic_net

    t0 = time.time()
    tf.keras.utils.set_random_seed(seed)
    # Built right after seeding, as before --init_from existed: same initial weights.
    semantic, instance = semantic_net(), instance_net()
    if init_from is not None:
        # Checked before the long rendering, so a wrong path fails at once.
        restore_exported_weights(semantic, instance, init_from)
    rng = np.random.default_rng(seed)
    print(
        f"Rendering {config.num_scenes} training scenes (seed {TRAIN_SEED_BASE + seed})...",
        flush=True,
    )
    data = render_training_set(TRAIN_SEED_BASE + seed, config.num_scenes, config.input_shape)
    t_render = time.time() - t0
    print(f"  done in {t_render:.0f}s", flush=True)
    step = _make_step(semantic, instance, config)
    t1 = time.time()
    for i, batch in enumerate(_prefetched_batches(data, rng, config), start=1):
        losses = step(*batch)
        if i % 50 == 0 or i == 1 or i == config.steps:
            msg = " ".join(f"{k}={float(v):.4f}" for k, v in losses.items())
            print(f"step {i}/{config.steps} [{time.time() - t1:.0f}s] {msg}", flush=True)
    t_train = time.time() - t1
    work_dir.mkdir(parents=True, exist_ok=True)
    semantic.save_weights(work_dir / "semantic.weights.h5")
    instance.save_weights(work_dir / "instance.weights.h5")
    print(f"Saved weights to {work_dir}", flush=True)
    # Imported only now, so finalisation can still be fixed while a long training
    # runs (and rerun alone from the saved weights with `python -m models.train_finalize`).
    from models.train_finalize import finalize

    run_info = {
        "config": asdict(config),
        "seed": seed,
        "train_scene_seed": TRAIN_SEED_BASE + seed,
        "init_from": None if init_from is None else str(init_from),
        "render_seconds": round(t_render, 1),
        "train_seconds": round(t_train, 1),
        "started": t0,
    }
    return finalize(
        semantic,
        instance,
        output,
        run_info,
        config.val_images,
        work_dir,
        input_shape=config.input_shape,
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        help="Where the SavedModels, specs, label map and training log go.",
    )
    parser.add_argument("--seed", type=int, default=0)
    defaults = TrainConfig()
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch_size", type=int, default=defaults.batch_size)
    parser.add_argument("--crop", type=int, default=defaults.crop, help="Training crop side.")
    parser.add_argument("--num_scenes", type=int, default=defaults.num_scenes)
    parser.add_argument("--val_images", type=int, default=defaults.val_images)
    parser.add_argument("--learning_rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--warmup_steps", type=int, default=defaults.warmup_steps)
    parser.add_argument(
        "--pedestrian_offset_weight",
        type=float,
        default=defaults.pedestrian_offset_weight,
        help="A pedestrian cell's weight in the offset loss against a vehicle cell's.",
    )
    parser.add_argument(
        "--input_shape",
        type=parse_input_shape,
        default=defaults.input_shape,
        help="HEIGHTxWIDTH to stretch scenes to and export at (default: "
        f"{defaults.input_shape[0]}x{defaults.input_shape[1]}).",
    )
    parser.add_argument(
        "--init_from",
        type=Path,
        default=None,
        help="An earlier run's --output directory: start from its exported weights.",
    )
    parser.add_argument("--work_dir", type=Path, default=Path("/tmp/segbeam_train"))
    args = parser.parse_args(argv)
    try:
        config = TrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            crop=args.crop,
            num_scenes=args.num_scenes,
            val_images=args.val_images,
            learning_rate=args.learning_rate,
            warmup_steps=args.warmup_steps,
            pedestrian_offset_weight=args.pedestrian_offset_weight,
            input_shape=args.input_shape,
        )
    except ValueError as e:
        parser.error(str(e))
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    train(args.output, args.seed, config, args.work_dir, args.init_from)


if __name__ == "__main__":
    main()
