"""The two bundled networks: small U-Nets with separable convolutions.

Both take uint8 RGB [B, H, W, 3] (normalised inside; H x W = 256 x 512 for the
exports, `models.net_geometry`; any sides divisible by 16 in training). Encoder
strides 2/4/8/16 with widths `widths`, then a dilated context block at stride
16; the decoder upsamples by 2 and fuses the skip at each level, ending at
stride 2. Dense heads (class logits, thing segmentation, offsets) predict every
input pixel from the stride-2 features by a sub-pixel convolution (a 1x1
convolution to 4x the channels, then depth-to-space); the centre heatmaps stay
at stride 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from models.net_geometry import DENSE_STRIDE, OUTPUT_STRIDE

NUM_CLASSES = 7
NUM_THING_CLASSES = 2  # vehicle, pedestrian; the thing-segmentation head adds background.
# Project class ids of thing channels 1 and 2: the last ids, after the stuff classes
# (fuse_thing_logits relies on that order).
THING_CLASS_IDS = (5, 6)
OFFSET_SCALE = 16.0  # The offset head predicts offsets / OFFSET_SCALE, in input pixels.
# Initial centre heatmap value, sigmoid(-2.2) ~ 0.1 (CenterNet's focal-loss prior).
CENTER_PRIOR_LOGIT = -2.2
# Short CPU training moves the weights fast; Keras' default 0.99 lets the
# inference-time statistics lag far behind them.
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class NetConfig:
    """Widths of the encoder levels (strides 2, 4, 8, 16) and of the head convs."""

    widths: tuple[int, int, int, int] = (24, 48, 96, 160)
    head_width: int = 32


DEFAULT_CONFIG = NetConfig()


def with_input_shape(net: keras.Model, input_shape: tuple[int, int]) -> keras.Model:
    """The same network and weights, rebuilt for a fixed (height, width) input (for export)."""
    build = {"semantic": semantic_net, "instance": instance_net}[net.name]
    fixed = build(input_shape=input_shape)
    fixed.set_weights(net.get_weights())
    return fixed


_SUBPIXEL = OUTPUT_STRIDE // DENSE_STRIDE


@keras.saving.register_keras_serializable(package="segbeam")
class DepthToSpace(keras.layers.Layer):
    """[B, H, W, C * r * r] -> [B, H * r, W * r, C] (tf.nn.depth_to_space)."""

    def __init__(self, block_size: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.block_size = block_size

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.nn.depth_to_space(inputs, self.block_size)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        b, h, w, c = input_shape
        r = self.block_size
        return (b, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self) -> dict:
        return {**super().get_config(), "block_size": self.block_size}


def _dense_head(
    x: keras.KerasTensor, channels: int, name: str, **conv_kwargs: object
) -> keras.KerasTensor:
    """1x1 convolution to `channels` per input pixel, from stride-2 features."""
    x = keras.layers.Conv2D(channels * _SUBPIXEL**2, 1, name=name, **conv_kwargs)(x)
    if _SUBPIXEL == 1:
        return x
    return DepthToSpace(_SUBPIXEL, name=f"{name}_to_space")(x)


def _conv_bn(
    x: keras.KerasTensor, filters: int, stride: int = 1, separable: bool = True, name: str = ""
) -> keras.KerasTensor:
    if separable:
        x = keras.layers.SeparableConv2D(
            filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_sep"
        )(x)
    else:
        x = keras.layers.Conv2D(
            filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"
        )(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _context(x: keras.KerasTensor, width: int, name: str) -> keras.KerasTensor:
    """Two residual separable convolutions dilated 2 and 4 on the stride-16 features.

    They widen the bottleneck's (theoretical) receptive field from 123 to 315
    input pixels for ~55k parameters and little compute (the stride-16 grid is
    16 x 32 cells at 256 x 512): a large vehicle's far pixels must see its
    centre to vote for it (model card: held-out vehicle AP50 0.651 -> 0.726).
    """
    for rate in (2, 4):
        y = keras.layers.SeparableConv2D(
            width, 3, padding="same", dilation_rate=rate, use_bias=False, name=f"{name}{rate}_sep"
        )(x)
        y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}{rate}_bn")(y)
        y = keras.layers.Add(name=f"{name}{rate}_add")([x, y])
        x = keras.layers.ReLU(name=f"{name}{rate}_relu")(y)
    return x


def _backbone(
    config: NetConfig, name: str, input_shape: tuple[int, int] | None
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Returns (uint8 input, float decoder features [B, H/2, W/2, widths[0] * 2])."""
    # None: any sides divisible by 16 (training uses crops). Exports need a fixed
    # size, because saving traces the model and bilinear upsampling needs static shapes.
    height, width = input_shape if input_shape is not None else (None, None)
    images = keras.Input((height, width, 3), dtype="uint8", name="images")
    # Rescaling casts uint8 to float32 first: [0, 255] -> [-1, 1].
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=f"{name}_normalise")(images)
    w = config.widths
    x = _conv_bn(x, w[0], stride=2, separable=False, name=f"{name}_stem")
    skips = [_conv_bn(x, w[0], name=f"{name}_e1")]
    x = skips[0]
    for level, width in enumerate(w[1:], start=2):
        x = _conv_bn(x, width, stride=2, name=f"{name}_e{level}a")
        x = _conv_bn(x, width, name=f"{name}_e{level}b")
        if level == 4:
            x = _conv_bn(x, width, name=f"{name}_e{level}c")
            x = _context(x, width, name=f"{name}_ctx")
        skips.append(x)
    for level in (3, 2, 1):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up{level}")(x)
        x = keras.layers.Concatenate(name=f"{name}_cat{level}")([x, skips[level - 1]])
        x = _conv_bn(x, max(w[level - 1], 2 * w[0]), name=f"{name}_d{level}")
    return images, x


def semantic_net(
    config: NetConfig = DEFAULT_CONFIG, input_shape: tuple[int, int] | None = None
) -> keras.Model:
    """Semantic segmentation: {"logits": float32 [B, H, W, 7]} for uint8 [B, H, W, 3]."""
    images, x = _backbone(config, "sem", input_shape)
    x = _conv_bn(x, config.head_width, name="sem_head")
    logits = _dense_head(x, NUM_CLASSES, name="sem_logits")
    return keras.Model(images, {"logits": logits}, name="semantic")


def instance_net(
    config: NetConfig = DEFAULT_CONFIG, input_shape: tuple[int, int] | None = None
) -> keras.Model:
    """Panoptic-DeepLab-style heads on a shared decoder, float32, for uint8 [B, H, W, 3].

    Outputs:
      thing_logits: [B, H, W, 3], background / vehicle / pedestrian.
      center_logits: [B, H/2, W/2, 2], per thing class, sigmoid -> centre heatmap.
      offsets: [B, H, W, 2], (dy, dx) in input pixels from each pixel to its instance centre.
    """
    images, x = _backbone(config, "ins", input_shape)
    heads = {}
    for key, channels in (("thing_logits", 3), ("center_logits", 2), ("offsets", 2)):
        h = _conv_bn(x, config.head_width, name=f"ins_{key}_head")
        # The offsets start at 0 and the centre heatmaps at the prior (CENTER_PRIOR_LOGIT)
        # on every cell (CenterNet's initialisation), whatever the seed: with a random
        # centre kernel, seed 1's first focal loss was 194 instead of ~6 and its
        # held-out AP50 0.337 instead of 0.499 with this start (models/MODEL_HISTORY.md).
        init = "glorot_uniform" if key == "thing_logits" else "zeros"
        bias = (
            keras.initializers.Constant(CENTER_PRIOR_LOGIT) if key == "center_logits" else "zeros"
        )
        conv = {"kernel_initializer": init, "bias_initializer": bias}
        if key == "center_logits":
            heads[key] = keras.layers.Conv2D(channels, 1, name=f"ins_{key}", **conv)(h)
        else:
            heads[key] = _dense_head(h, channels, name=f"ins_{key}", **conv)
    heads["offsets"] = keras.layers.Rescaling(OFFSET_SCALE, name="ins_offset_scale")(
        heads["offsets"]
    )
    return keras.Model(images, heads, name="instance")


def fuse_thing_logits(
    instance_heads: dict[str, tf.Tensor], semantic_logits: tf.Tensor
) -> dict[str, tf.Tensor]:
    """The instance heads with the semantic network's evidence added to the thing segmentation.

    The two networks are trained side by side on the same scenes, and the
    semantic one, supervised with all 7 classes, separates pedestrians from
    their surroundings better; multiplying both networks' probabilities of
    background / vehicle / pedestrian (a product of experts) gives the export's
    thing segmentation, and training applies the thing loss to it (measured
    gains in `models/MODEL_HISTORY.md`, "What was tried").

    The product is returned as logits: the instance logits plus the semantic
    network's (its stuff classes pooled by logsumexp into background). Summing
    the two log-softmaxes instead differs from this by one constant per pixel,
    which softmax, argmax and the cross-entropy and Lovasz losses all ignore;
    leaving out those two full-resolution log-softmaxes (and taking the stuff
    channels by a slice, not a gather) took the bundled instance export's call
    from 88.0 to 75.5 ms per image (batches of 8 at 320x640, a 2-core Xeon;
    `python -m benchmarks.model_call`, docs/performance.md, "Session 21").

    Args:
      instance_heads: `instance_net` outputs; thing_logits float32 [B, H, W, 3].
      semantic_logits: `semantic_net` logits, float32 [B, H, W, 7].

    Returns:
      The same dict with thing_logits float32 [B, H, W, 3] replaced.
    """
    # labels.txt numbers the stuff classes first: ids 0-4 are stuff, THING_CLASS_IDS the rest.
    num_stuff = NUM_CLASSES - len(THING_CLASS_IDS)
    background = tf.reduce_logsumexp(semantic_logits[..., :num_stuff], axis=-1, keepdims=True)
    semantic_things = tf.concat([background, semantic_logits[..., num_stuff:]], axis=-1)
    return {**instance_heads, "thing_logits": instance_heads["thing_logits"] + semantic_things}
