"""The two bundled networks: small U-Nets with separable convolutions.

Both take uint8 RGB [B, 256, 256, 3] (normalised inside). Encoder strides
2/4/8/16 with widths `widths`; the decoder upsamples by 2 and fuses the skip at
each level. The semantic net predicts at output stride 2 ([B, 128, 128, C]);
the instance net adds one more decoder level fused with a full-resolution
feature and predicts at stride 1 ([B, 256, 256, C]), because far pedestrians
are only a few input pixels wide: on a 128x128 grid even perfect heads reach
mask AP50 0.72 on validation scenes, on 256x256 they reach 0.97.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

INPUT_SIZE = 256
SEMANTIC_OUTPUT_STRIDE = 2
INSTANCE_OUTPUT_STRIDE = 1
INSTANCE_OUTPUT_SIZE = INPUT_SIZE // INSTANCE_OUTPUT_STRIDE
NUM_CLASSES = 7
NUM_THING_CLASSES = 2  # vehicle, pedestrian; the thing-segmentation head adds background.
THING_CLASS_IDS = (5, 6)  # Project class id of thing channel 1 and 2.
OFFSET_SCALE = 16.0
# Short CPU training moves the weights fast; Keras' default 0.99 lets the
# inference-time statistics lag far behind them.
BN_MOMENTUM = 0.9  # The offset head predicts offsets / OFFSET_SCALE, in input pixels.


@dataclass(frozen=True)
class NetConfig:
    """Widths of the encoder levels (strides 2, 4, 8, 16) and of the head convs."""

    widths: tuple[int, int, int, int] = (24, 48, 96, 160)
    head_width: int = 32
    full_res_width: int = 16  # The instance net's stride-1 skip and decoder level.


DEFAULT_CONFIG = NetConfig()


def with_input_size(net: keras.Model, input_size: int) -> keras.Model:
    """The same network and weights, rebuilt for a fixed input side (for export)."""
    build = {"semantic": semantic_net, "instance": instance_net}[net.name]
    fixed = build(input_size=input_size)
    fixed.set_weights(net.get_weights())
    return fixed


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


def _backbone(
    config: NetConfig, name: str, input_size: int | None, full_resolution: bool = False
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Returns (uint8 input, float decoder features).

    Features are [B, S/2, S/2, widths[0] * 2], or with `full_resolution`
    [B, S, S, full_res_width] after one more decoder level.
    """
    # None: any side divisible by 16 (training uses crops). Exports need a fixed
    # size, because saving traces the model and bilinear upsampling needs static shapes.
    images = keras.Input((input_size, input_size, 3), dtype="uint8", name="images")
    # Rescaling casts uint8 to float32 first: [0, 255] -> [-1, 1].
    normalised = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=f"{name}_normalise")(images)
    w = config.widths
    x = _conv_bn(normalised, w[0], stride=2, separable=False, name=f"{name}_stem")
    skips = [_conv_bn(x, w[0], name=f"{name}_e1")]
    x = skips[0]
    for level, width in enumerate(w[1:], start=2):
        x = _conv_bn(x, width, stride=2, name=f"{name}_e{level}a")
        x = _conv_bn(x, width, name=f"{name}_e{level}b")
        if level == 4:
            x = _conv_bn(x, width, name=f"{name}_e{level}c")
        skips.append(x)
    for level in (3, 2, 1):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up{level}")(x)
        x = keras.layers.Concatenate(name=f"{name}_cat{level}")([x, skips[level - 1]])
        x = _conv_bn(x, max(w[level - 1], 2 * w[0]), name=f"{name}_d{level}")
    if full_resolution:
        skip = _conv_bn(normalised, config.full_res_width, separable=False, name=f"{name}_e0")
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up0")(x)
        x = keras.layers.Concatenate(name=f"{name}_cat0")([x, skip])
        x = _conv_bn(x, config.full_res_width * 2, name=f"{name}_d0")
    return images, x


def semantic_net(config: NetConfig = DEFAULT_CONFIG, input_size: int | None = None) -> keras.Model:
    """Semantic segmentation: {"logits": float32 [B, S/2, S/2, 7]} for uint8 [B, S, S, 3]."""
    images, x = _backbone(config, "sem", input_size)
    x = _conv_bn(x, config.head_width, name="sem_head")
    logits = keras.layers.Conv2D(NUM_CLASSES, 1, name="sem_logits")(x)
    return keras.Model(images, {"logits": logits}, name="semantic")


def instance_net(config: NetConfig = DEFAULT_CONFIG, input_size: int | None = None) -> keras.Model:
    """Panoptic-DeepLab-style heads on a shared decoder, all float32 [B, S, S, C].

    Outputs:
      thing_logits: C=3, background / vehicle / pedestrian.
      center_logits: C=2, per thing class, sigmoid -> centre heatmap.
      offsets: C=2, (dy, dx) in input pixels from each pixel to its instance centre.
    """
    images, x = _backbone(config, "ins", input_size, full_resolution=True)
    heads = {}
    for key, channels in (("thing_logits", 3), ("center_logits", 2), ("offsets", 2)):
        h = _conv_bn(x, config.head_width, name=f"ins_{key}_head")
        init = "zeros" if key == "offsets" else "glorot_uniform"
        # Centre prior 0.02 (CenterNet uses 0.1 at stride 4): at stride 1 there are
        # 16x as many background cells, and a 0.1 prior makes the focal loss start
        # two orders of magnitude above the segmentation loss.
        bias = keras.initializers.Constant(-4.0) if key == "center_logits" else "zeros"
        heads[key] = keras.layers.Conv2D(
            channels, 1, kernel_initializer=init, bias_initializer=bias, name=f"ins_{key}"
        )(h)
    heads["offsets"] = keras.layers.Rescaling(OFFSET_SCALE, name="ins_offset_scale")(
        heads["offsets"]
    )
    return keras.Model(images, heads, name="instance")
