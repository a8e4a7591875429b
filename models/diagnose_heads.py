"""Which of the instance model's three heads limits its mask AP: a ground-truth swap test.

    python -m models.diagnose_heads [--model_dir models/bundled] [--num_images 40]
        [--input_shape 384x768]

On validation renders (seed 5,000, the calibration indices; never the held-out
evaluation seed), the exported instance network's raw heads (thing
segmentation, centre heatmap, centre offsets), computed as the export computes
them (`models.export.instance_heads`: mirror-averaged when its training log
says the export was), are grouped by the same in-graph post-processing,
once as predicted and once with each head (and pairs of heads) replaced by the
head a perfect network would emit, built from the training targets. Prints COCO
mask AP (IoU 0.50:0.95) and AP50, overall and per class, for each variant: the
head whose swap gains most is the one to improve, and "all ground truth" is the
ceiling the output grid, the grouping and the paste allow (AP50 reaches it
more easily than AP, whose stricter IoUs the input grid limits for thin objects).

`--input_shape HxW` runs the same weights, and builds the perfect heads, at another
input shape than the export's (the networks are fully convolutional): what a larger
input would buy before any retraining, and where its ceiling lies.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from models.evaluate_metrics import Detection, GroundTruthImage, InstanceScores, instance_scores
from models.export import DEFAULT_POSTPROCESS, instance_heads, restore_exported_weights
from models.export_postprocess import to_detections
from models.net_geometry import DENSE_STRIDE, INPUT_SHAPE, parse_input_shape
from models.networks import THING_CLASS_IDS, instance_net, semantic_net
from models.synthetic_render import scene_for_index
from models.train_calibrate import CALIBRATION_START
from models.train_data import instance_targets, stretched_maps
from models.train_finalize import exported_with_mirror_average
from models.train_validate import (
    VALIDATION_SEED,
    detections_from_outputs,
    model_input,
    scene_ground_truth,
)

HEADS = ("thing_logits", "center_logits", "offsets")
# Printed column prefix -> key of `diagnose`'s per-variant scores.
COLUMN_KEYS = {"all": "all", "vehicle": "5", "pedestrian": "6"}
# Raw scores (no calibration power): AP depends on the ranking only.
_RAW_SCORES = dataclasses.replace(DEFAULT_POSTPROCESS, score_power=1.0)
# Variant name -> heads taken from the ground truth.
VARIANTS = {
    "predicted": (),
    "ground-truth thing": ("thing_logits",),
    "ground-truth centres": ("center_logits",),
    "ground-truth offsets": ("offsets",),
    "ground-truth thing + centres": ("thing_logits", "center_logits"),
    "all ground truth": HEADS,
}


def perfect_heads(class_map: np.ndarray, instance_map: np.ndarray) -> dict[str, tf.Tensor]:
    """The raw heads a perfect network would emit for one stretched scene.

    Args:
      class_map, instance_map: uint8 [H, W] at the model input size.

    Returns:
      {"thing_logits": [1, H, W, 3], "center_logits": [1, H/2, W/2, 2],
       "offsets": [1, H, W, 2]}, float32 (OUTPUT_STRIDE 2, DENSE_STRIDE 1).
    """
    targets = instance_targets(class_map[None], instance_map[None])
    thing = targets.thing[0, ::DENSE_STRIDE, ::DENSE_STRIDE]
    heat = np.clip(targets.heatmap, 1e-6, 1 - 1e-6)
    return {
        "thing_logits": tf.constant(np.eye(3, dtype=np.float32)[thing][None] * 20.0),
        "center_logits": tf.constant(np.log(heat / (1 - heat))),
        "offsets": tf.constant(targets.offsets),
    }


def diagnose(
    model_dir: Path, num_images: int, input_shape: tuple[int, int] = INPUT_SHAPE
) -> dict[str, dict[str, InstanceScores]]:
    """COCO mask scores, overall ("all") and per thing class id ("5", "6"), for every
    variant in VARIANTS, with the networks run at input_shape (height, width)."""
    net, semantic = instance_net(input_shape=input_shape), semantic_net(input_shape=input_shape)
    restore_exported_weights(semantic, net, model_dir)
    mirror_average = exported_with_mirror_average(model_dir)
    ground_truth: list[GroundTruthImage] = []
    detections: dict[str, list[Detection]] = {name: [] for name in VARIANTS}
    for position in range(num_images):
        index = CALIBRATION_START + position
        scene = scene_for_index(VALIDATION_SEED, index)
        height, width = scene.class_map.shape
        class_map, instance_map = stretched_maps(scene, input_shape)
        image = model_input(scene.image, input_shape)
        predicted = instance_heads(net, semantic, image, mirror_average)
        perfect = perfect_heads(class_map, instance_map)
        ground_truth.append(scene_ground_truth(scene))
        for name, swapped in VARIANTS.items():
            heads = {h: perfect[h] if h in swapped else predicted[h] for h in HEADS}
            outputs = to_detections(heads, _RAW_SCORES)
            detections[name] += detections_from_outputs(outputs, position, height, width, 0.0)
    return {
        name: {
            "all": instance_scores(ground_truth, dets, THING_CLASS_IDS),
            **{str(c): instance_scores(ground_truth, dets, (c,)) for c in THING_CLASS_IDS},
        }
        for name, dets in detections.items()
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: prints one line per variant."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", type=Path, default=Path(__file__).parent / "bundled")
    parser.add_argument("--num_images", type=int, default=40)
    parser.add_argument(
        "--input_shape",
        type=parse_input_shape,
        default=INPUT_SHAPE,
        help="HEIGHTxWIDTH to run the networks at (default: INPUT_SHAPE, the export's).",
    )
    args = parser.parse_args(argv)
    columns = [f"{key}_{metric}" for key in COLUMN_KEYS for metric in ("AP", "AP50")]
    print(f"{'variant':30s}" + "".join(f" {c:>15s}" for c in columns))
    for name, scores in diagnose(args.model_dir, args.num_images, args.input_shape).items():
        values = [(scores[key].ap, scores[key].ap50) for key in COLUMN_KEYS.values()]
        print(f"{name:30s}" + "".join(f" {v:15.3f}" for pair in values for v in pair))


if __name__ == "__main__":
    main()
