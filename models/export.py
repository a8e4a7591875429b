"""Exports the trained networks as plain SavedModels plus their spec files.

Contract (the pipeline's loader depends on it):

semantic/  serving_default(images: uint8 [None, H, W, 3])
  -> {"logits": float32 [B, H, W, 7]}; channel c is class id c.

instance/  serving_default(images: uint8 [None, H, W, 3]) -> TF2 OD-API dict:
  detection_boxes   float32 [B, 50, 4]  normalised (ymin, xmin, ymax, xmax)
  detection_scores  float32 [B, 50]     descending, 0 for padding
  detection_classes float32 [B, 50]     class id + 1 (vehicle 6, pedestrian 7), 0 padding
  num_detections    float32 [B]
  detection_masks   float32 [B, 50, 48, 48] box-relative mask probabilities
  and the semantic network's logits, as semantic/ gives them (the instance model
  runs that network anyway, `networks.fuse_thing_logits`):
  logits            float32 [B, H, W, 7]

Spec files: semantic.json (semantic/), instance.json (instance/'s detections) and
semantic_shared.json (instance/'s logits). A run with both bundled models reads its
semantic maps through semantic_shared.json, so one call per batch serves both
(`models.adapters.shared_calls`; `pipeline.options` picks it); a semantic-only run
uses semantic/, which runs the semantic network alone.

(H, W) is `export_models`' input_shape, the one the networks trained at (the
bundled models: INPUT_SHAPE, 320x640); the spec files record it as input_size.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from models.export_postprocess import PostprocessConfig, to_detections
from models.mirror_average import mirror_averaged
from models.net_geometry import INPUT_SHAPE
from models.networks import fuse_thing_logits, with_input_shape
from models.synthetic import LABELS_PATH

DEFAULT_POSTPROCESS = PostprocessConfig()


def _images_spec(net: keras.Model) -> tf.TensorSpec:
    """The signature's input: uint8 [None, H, W, 3] at the fixed-shape network's (H, W)."""
    return tf.TensorSpec([None, *net.input_shape[1:3], 3], tf.uint8, name="images")


SEMANTIC_SPEC = {
    "format": "saved_model",
    "path": "semantic",
    "signature": "serving_default",
    "input_key": "images",
    "input_size": list(INPUT_SHAPE),  # export_models writes its input_shape here.
    "resize": "stretch",
    "input_range": "uint8",
    "output_format": "logits",
    "output_key": "logits",
    "labels": "labels.txt",
    "label_offset": 0,
    "upsampling": "joint_bilateral",
}
# The semantic logits the instance export also returns: same figures, no second network call.
SEMANTIC_SHARED_SPEC = {**SEMANTIC_SPEC, "path": "instance"}
INSTANCE_SPEC = {
    "format": "saved_model",
    "path": "instance",
    "signature": "serving_default",
    "input_key": "images",
    "input_size": list(INPUT_SHAPE),  # export_models writes its input_shape here.
    "resize": "stretch",
    "input_range": "uint8",
    "output_format": "od_api",
    "labels": "labels.txt",
    "label_offset": -1,
    "score_threshold": 0.5,
    "mask_threshold": 0.5,
    "upsampling": "joint_bilateral",
}


def instance_heads(
    net: keras.Model, semantic: keras.Model, images: tf.Tensor, mirror_average: bool
) -> dict[str, tf.Tensor]:
    """The instance export's heads before grouping, for uint8 [B, H, W, 3] images.

    The instance network's heads with the semantic network's evidence fused
    into the thing segmentation (`networks.fuse_thing_logits`), averaged over
    the image and its mirror when `mirror_average` (`models.mirror_average`).
    Shapes as `networks.instance_net` gives them, plus "semantic_logits": the
    semantic network's float32 [B, H, W, 7], averaged the same way.
    """

    def fused(batch: tf.Tensor) -> dict[str, tf.Tensor]:
        semantic_logits = semantic(batch, training=False)["logits"]
        return {
            **fuse_thing_logits(net(batch, training=False), semantic_logits),
            "semantic_logits": semantic_logits,
        }

    return mirror_averaged(fused, images) if mirror_average else fused(images)


class SemanticModule(tf.Module):
    """Holds the semantic network; `serve` is the exported signature."""

    def __init__(self, net: keras.Model, *, mirror_average: bool) -> None:
        super().__init__(name="semantic")
        self.net = net
        self._mirror_average = mirror_average
        # Built here, not as a decorator: the input signature is the network's input shape.
        self.serve = tf.function(self._serve, input_signature=[_images_spec(net)], autograph=False)

    def _logits(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"logits": self.net(images, training=False)["logits"]}

    def _serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """uint8 [B, H, W, 3] -> {"logits": float32 [B, H, W, 7]}."""
        if self._mirror_average:
            return mirror_averaged(self._logits, images)
        return self._logits(images)


class InstanceModule(tf.Module):
    """Holds the instance network and the semantic network (whose class evidence
    sharpens the thing segmentation, `networks.fuse_thing_logits`), and runs
    grouping inside the signature."""

    def __init__(
        self,
        net: keras.Model,
        semantic: keras.Model,
        config: PostprocessConfig,
        *,
        mirror_average: bool,
    ) -> None:
        super().__init__(name="instance")
        self.net = net
        self.semantic = semantic
        self._config = config
        self._mirror_average = mirror_average
        self.serve = tf.function(self._serve, input_signature=[_images_spec(net)], autograph=False)

    def _serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """uint8 [B, H, W, 3] -> OD-API detection dict and "logits" (see module docstring)."""
        heads = instance_heads(self.net, self.semantic, images, self._mirror_average)
        return {**to_detections(heads, self._config), "logits": heads["semantic_logits"]}


def restore_exported_weights(semantic: keras.Model, instance: keras.Model, model_dir: Path) -> None:
    """Loads both networks' weights from the instance export in model_dir (the
    `--output` of `models.train`; the inverse of `export_models`).

    The instance SavedModel tracks both networks (InstanceModule's `net` and
    `semantic`), so its one checkpoint holds both.

    Raises:
      ValueError: model_dir holds no instance export, or one whose variables do
        not fit these networks (another architecture).
    """
    variables = model_dir / "instance" / "variables" / "variables"
    if not variables.with_suffix(".index").is_file():
        raise ValueError(
            f"{model_dir}: no instance export at {variables}.index; give the --output "
            "directory of an earlier `python -m models.train` run."
        )
    # The export's attribute names; `read`, unlike `restore`, adds no save_counter
    # (exports have none, so the match check below would fail on it).
    checkpoint = tf.train.Checkpoint(net=instance, semantic=semantic)
    try:
        checkpoint.read(str(variables)).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        raise ValueError(
            f"{model_dir}: its weights do not fit the networks of "
            "models.networks (exported from another architecture?)."
        ) from e


def _save(module: tf.Module, directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})


def export_models(
    semantic: keras.Model,
    instance: keras.Model,
    output: str | Path,
    config: PostprocessConfig,
    *,
    mirror_average: bool,
    input_shape: tuple[int, int] = INPUT_SHAPE,
) -> None:
    """Writes output/semantic/, output/instance/ and the three spec JSON files.

    Both signatures take uint8 images of input_shape (height, width), the spec
    files' input_size.

    Also writes output/labels.txt, the generator's label map (the specs point at
    it; the networks predict the classes the generator renders). With
    `mirror_average`, both signatures average the networks' outputs over the
    image and its mirror (`models.mirror_average`): the same contract at twice
    the network cost.
    """
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "labels.txt").resolve() != LABELS_PATH.resolve():
        shutil.copyfile(LABELS_PATH, out / "labels.txt")
    fixed_semantic = with_input_shape(semantic, input_shape)
    _save(SemanticModule(fixed_semantic, mirror_average=mirror_average), out / "semantic")
    fixed_instance = with_input_shape(instance, input_shape)
    _save(
        InstanceModule(fixed_instance, fixed_semantic, config, mirror_average=mirror_average),
        out / "instance",
    )
    for name, spec in (
        ("semantic", SEMANTIC_SPEC),
        ("semantic_shared", SEMANTIC_SHARED_SPEC),
        ("instance", INSTANCE_SPEC),
    ):
        spec = {**spec, "input_size": list(input_shape)}  # Keeps the key's place.
        (out / f"{name}.json").write_text(json.dumps(spec, indent=2) + "\n")
