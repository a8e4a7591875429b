"""The end of training: calibrate scores, export both models, validate the exports.

    python -m models.train_finalize --work_dir /tmp/segbeam_train --output models/bundled \
        [--valley_ratio R|none] [--input_shape HxW]

reruns this step alone from the weights `models.train` saved, optionally with another
peak-finding valley ratio (PostprocessConfig.valley_ratio; default the export's, 0.9).
The exports take the input shape the output's training log records (the shape the
weights trained at), else INPUT_SHAPE; `--input_shape` overrides it (logs written
before the shape was recorded were all trained at 256x512).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import keras
import tensorflow as tf

from models.export import DEFAULT_POSTPROCESS, export_models
from models.export_postprocess import PostprocessConfig
from models.net_geometry import INPUT_SHAPE, parse_input_shape
from models.train_calibrate import calibrate
from models.train_validate import validate

CALIBRATION_IMAGES = 100
# Averaging over the image and its mirror (models.mirror_average) doubles the network
# cost. At 256x512 it bought held-out mask AP50 0.500 -> 0.521 and mIoU 0.906 -> 0.910
# (the models of commit bd1f799); at 320x640, 1.56x the pixels, the single pass is
# cheaper than the mirrored 256x512 one and scores better than it (models/MODEL_CARD.md).
MIRROR_AVERAGE = False
DEFAULT_WORK_DIR = Path("/tmp/segbeam_train")
TRAINING_LOG = "training_log.json"  # Written next to the exports by `finalize`.


def training_log(model_dir: Path) -> dict | None:
    """The training log `finalize` wrote next to model_dir's exports, or None if it has none.

    `finalize` keeps the log of the export a fine-tuning stage started from
    (`--init_from`) inside the new one, so the last stage's log records every stage.
    """
    log = model_dir / TRAINING_LOG
    return json.loads(log.read_text()) if log.is_file() else None


def exported_with_mirror_average(model_dir: Path) -> bool:
    """Whether `finalize` exported model_dir with mirror averaging, from its training
    log (exports from before the option had no such entry: they did not average)."""
    return bool((training_log(model_dir) or {}).get("mirror_average", False))


def split_earlier_log(run_info: dict) -> tuple[dict, dict | None]:
    """run_info without its `init_from_training_log`, and the earlier stage's log: the one
    run_info already holds (a rerun of `finalize`), else the one found in
    run_info["init_from"], else None (a first stage, or an export with no log)."""
    run_info = dict(run_info)
    earlier = run_info.pop("init_from_training_log", None)
    if earlier is None and run_info.get("init_from"):
        earlier = training_log(Path(run_info["init_from"]))
    return run_info, earlier


def _calibrated_config(
    semantic: keras.Model,
    instance: keras.Model,
    work_dir: Path,
    base: PostprocessConfig,
    input_shape: tuple[int, int],
) -> tuple:
    """Exports with raw scores to work_dir, then fits the score power (models.train_calibrate)."""
    raw_dir = work_dir / "uncalibrated"
    raw = dataclasses.replace(base, score_power=1.0)
    export_models(
        semantic, instance, raw_dir, raw, mirror_average=MIRROR_AVERAGE, input_shape=input_shape
    )
    fn = tf.saved_model.load(str(raw_dir / "instance")).signatures["serving_default"]
    calibration = calibrate(fn, CALIBRATION_IMAGES)
    print(f"Calibration: {calibration}", flush=True)
    power = calibration["score_power"]
    return dataclasses.replace(base, score_power=power), calibration


def finalize(
    semantic: keras.Model,
    instance: keras.Model,
    output: Path,
    run_info: dict,
    val_images: int,
    work_dir: Path = DEFAULT_WORK_DIR,
    base: PostprocessConfig = DEFAULT_POSTPROCESS,
    *,
    input_shape: tuple[int, int] = INPUT_SHAPE,
) -> dict:
    """Calibrates, exports to `output`, validates the exports, writes output/TRAINING_LOG.

    `base` is the grouping's post-processing; its score_power is replaced by the calibrated one.
    `input_shape` (height, width) is the exports' input, the one the networks trained at.

    The earlier stage's log (`split_earlier_log`) is read before anything is exported
    (`output` may be the `--init_from` directory) and kept last in the new log as
    `init_from_training_log`.
    """
    run_info, earlier = split_earlier_log(run_info)
    postprocess, calibration = _calibrated_config(semantic, instance, work_dir, base, input_shape)
    export_models(
        semantic,
        instance,
        output,
        postprocess,
        mirror_average=MIRROR_AVERAGE,
        input_shape=input_shape,
    )
    report = validate(
        tf.saved_model.load(str(output / "semantic")).signatures["serving_default"],
        tf.saved_model.load(str(output / "instance")).signatures["serving_default"],
        num_images=val_images,
    )
    started = run_info.pop("started", None)
    # Re-finalising saved weights keeps the training run's own total.
    total = round(time.time() - started, 1) if started else run_info.get("total_seconds")
    summary = {
        **run_info,
        "total_seconds": total,
        "parameters": {"semantic": semantic.count_params(), "instance": instance.count_params()},
        "postprocess": dataclasses.asdict(postprocess),
        "input_shape": list(input_shape),
        "mirror_average": MIRROR_AVERAGE,
        "calibration": calibration,
        "validation": {
            "num_images": report.num_images,
            "miou": report.semantic.miou,
            "per_class_iou": report.semantic.per_class_iou,
            "pixel_accuracy": report.semantic.pixel_accuracy,
            **{f"mask_{k}": v for k, v in report.instance._asdict().items()},
        },
    }
    if earlier is not None:
        summary["init_from_training_log"] = earlier  # Last: the log reads stage by stage.
    (output / TRAINING_LOG).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2), flush=True)
    return summary


def _valley_ratio(text: str) -> float | None:
    """--valley_ratio's value: a number, or 'none' (plain max-pool suppression)."""
    return None if text.lower() == "none" else float(text)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: finalise from saved weights."""
    from models.networks import instance_net, semantic_net

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--val_images", type=int, default=100)
    parser.add_argument(
        "--valley_ratio",
        type=_valley_ratio,
        default=DEFAULT_POSTPROCESS.valley_ratio,
        help="Peak finding's valley ratio in (0, 1], or 'none' for plain max-pool suppression "
        "(PostprocessConfig.valley_ratio).",
    )
    parser.add_argument(
        "--input_shape",
        type=parse_input_shape,
        default=None,
        help="HEIGHTxWIDTH of the exports (default: the training log's, else "
        f"{INPUT_SHAPE[0]}x{INPUT_SHAPE[1]}).",
    )
    args = parser.parse_args(argv)
    try:
        base = dataclasses.replace(DEFAULT_POSTPROCESS, valley_ratio=args.valley_ratio)
    except ValueError as e:
        parser.error(str(e))
    semantic, instance = semantic_net(), instance_net()
    semantic.load_weights(args.work_dir / "semantic.weights.h5")
    instance.load_weights(args.work_dir / "instance.weights.h5")
    run_info = training_log(args.output) or {}
    input_shape = args.input_shape or tuple(run_info.get("input_shape", INPUT_SHAPE))
    derived = ("validation", "parameters", "postprocess", "calibration", "input_shape")
    run_info = {k: v for k, v in run_info.items() if k not in derived}
    finalize(
        semantic,
        instance,
        args.output,
        run_info,
        args.val_images,
        args.work_dir,
        base,
        input_shape=input_shape,
    )


if __name__ == "__main__":
    main()
