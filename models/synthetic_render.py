"""Rasterises a sampled street scene into an image and its ground truth.

Objects are painted far to near (painter's algorithm) into three canvases at
once with the same PIL rasteriser: the RGB image, the class map and the
instance map, so the ground truth is exactly the visible pixels of each object.
Things left with too few visible pixels are removed and the scene repainted,
so no instance in the ground truth is a sliver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from models.synthetic_background import sample_street, sky_gradient, street_layers
from models.synthetic_geometry import Part, SceneObject, bbox_of_parts
from models.synthetic_layout import foreground, sample_camera

_ASPECTS = ((1, 1), (4, 3), (3, 2), (16, 9), (2, 1), (3, 4), (9, 16))  # (W, H).
MAX_INSTANCES = 250  # The instance canvas is uint8 with 0 = no instance.
# A thing is kept only if at least this many pixels and this share of it stay visible.
MIN_VISIBLE_FRAC_OF_IMAGE = 0.0002
MIN_VISIBLE_PIXELS = 12
MIN_VISIBLE_FRAC_OF_OBJECT = 0.2


@dataclass(frozen=True)
class Scene:
    """One rendered scene and its ground truth.

    Attributes:
      image: uint8 [H, W, 3] RGB, with lighting, blur and noise applied.
      class_map: uint8 [H, W], the class id (0..6) of every pixel.
      instance_map: uint8 [H, W], 0 where no instance, else 1 + index into
        `instance_class_ids`.
      instance_class_ids: int64 [N], the class id (5 vehicle or 6 pedestrian)
        of each instance.
    """

    image: np.ndarray
    class_map: np.ndarray
    instance_map: np.ndarray
    instance_class_ids: np.ndarray

    @property
    def instance_masks(self) -> np.ndarray:
        """bool [N, H, W]: the visible pixels of each instance."""
        ids = np.arange(1, len(self.instance_class_ids) + 1, dtype=np.uint8)
        return self.instance_map[None, :, :] == ids[:, None, None]


def render_scene(rng: np.random.Generator, height: int, width: int) -> Scene:
    """Renders one random street scene of the given size.

    Deterministic given the generator's state. See `models.synthetic` for the
    distribution of what is drawn.
    """
    cam = sample_camera(rng, height, width)
    street = sample_street(rng)
    sky = sky_gradient(rng, height, width)
    layers = street_layers(rng, cam, street)
    objects = sorted(foreground(rng, cam, street), key=lambda o: -o.depth)
    things = [o for o in objects if o.is_thing][:MAX_INSTANCES]
    kept = {id(t) for t in things}
    objects = [o for o in objects if not o.is_thing or id(o) in kept]
    canvases = _paint(sky, layers, objects)
    keep = _visible_enough(canvases[2], things, height, width)
    if not all(keep):
        dropped = {id(t) for t, k in zip(things, keep, strict=True) if not k}
        objects = [o for o in objects if id(o) not in dropped]
        things = [t for t, k in zip(things, keep, strict=True) if k]
        canvases = _paint(sky, layers, objects)
    image, class_map, instance_map = canvases
    image = _photometric(rng, image)
    return Scene(
        image=image,
        class_map=class_map,
        instance_map=instance_map,
        instance_class_ids=np.asarray([t.class_id for t in things], dtype=np.int64),
    )


def sample_size(rng: np.random.Generator) -> tuple[int, int]:
    """Draws an image (height, width) with both sides in [256, 1024]."""
    aw, ah = _ASPECTS[rng.integers(len(_ASPECTS))]
    ratio = max(aw, ah) / min(aw, ah)
    short = int(rng.integers(256, int(1024 / ratio) + 1))
    long = round(short * ratio)
    return (short, long) if aw >= ah else (long, short)


def scene_for_index(seed: int, index: int, size: tuple[int, int] | None = None) -> Scene:
    """Renders scene `index` of the stream for `seed`, independent of the others.

    Args:
      seed: The dataset seed.
      index: The scene's position in the dataset.
      size: (height, width) to force; drawn from `sample_size` when None.
    """
    rng = np.random.default_rng([seed, index])
    height, width = size if size is not None else sample_size(rng)
    return render_scene(rng, height, width)


def _paint(
    sky: np.ndarray, layers: list[tuple[int, Part]], objects: list[SceneObject]
) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Paints background then objects; returns (RGB image, class map, instance map)."""
    height, width = sky.shape[:2]
    rgb = Image.fromarray(sky)
    cls = Image.new("L", (width, height), 0)
    inst = Image.new("L", (width, height), 0)
    draws = (ImageDraw.Draw(rgb), ImageDraw.Draw(cls), ImageDraw.Draw(inst))
    for class_id, part in layers:
        if part.decor:
            _draw(draws[:1], part, (part.color,))
        else:
            _draw(draws, part, (part.color, class_id, 0))
    instance_id = 0
    for obj in objects:
        if obj.is_thing:
            instance_id += 1
        for part in obj.parts:
            _draw(draws, part, (part.color, obj.class_id, instance_id if obj.is_thing else 0))
    return rgb, np.asarray(cls), np.asarray(inst)


def _draw(draws: tuple[ImageDraw.ImageDraw, ...], part: Part, fills: tuple) -> None:
    for draw, fill in zip(draws, fills, strict=True):
        if part.kind == "poly":
            draw.polygon([tuple(p) for p in part.coords.tolist()], fill=fill)
        else:
            u0, v0, u1, v1 = part.coords.tolist()
            draw.ellipse([min(u0, u1), min(v0, v1), max(u0, u1), max(v0, v1)], fill=fill)


def _visible_enough(
    instance_map: np.ndarray, things: list[SceneObject], height: int, width: int
) -> list[bool]:
    """Whether each thing keeps enough visible pixels to be a fair instance."""
    visible = np.bincount(instance_map.ravel(), minlength=len(things) + 1)[1:]
    floor = max(MIN_VISIBLE_PIXELS, MIN_VISIBLE_FRAC_OF_IMAGE * height * width)
    return [
        bool(v >= floor and v >= MIN_VISIBLE_FRAC_OF_OBJECT * _area_in_image(t, height, width))
        for t, v in zip(things, visible, strict=True)
    ]


def _area_in_image(obj: SceneObject, height: int, width: int) -> int:
    """Pixels the object would cover alone, within the image bounds."""
    u0, v0, u1, v1 = bbox_of_parts(obj.parts)
    x0, y0 = max(int(np.floor(u0)), 0), max(int(np.floor(v0)), 0)
    x1, y1 = min(int(np.ceil(u1)) + 1, width), min(int(np.ceil(v1)) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return 0
    canvas = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw = ImageDraw.Draw(canvas)
    offset = np.array([x0, y0], dtype=np.float64)
    for part in obj.parts:
        if part.kind == "poly":
            shifted = Part("poly", part.coords - offset, part.color)
        else:
            shifted = Part("ellipse", part.coords - np.tile(offset, 2), part.color)
        _draw((draw,), shifted, (1,))
    return int(np.count_nonzero(np.asarray(canvas)))


def _photometric(rng: np.random.Generator, rgb: Image.Image) -> np.ndarray:
    """Camera effects: blur, global and graded lighting, a cast shadow, sensor noise.

    Returns uint8 [H, W, 3].
    """
    width, height = rgb.size
    short = min(height, width)
    if rng.random() < 0.7:
        rgb = rgb.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.6) * short / 512.0))
    img = np.asarray(rgb, dtype=np.float32)
    gain = (rng.uniform(0.55, 1.35) * (1.0 + rng.normal(0.0, 0.06, size=3))).astype(np.float32)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    ramp_u = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :] * np.float32(np.cos(angle))
    ramp_v = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None] * np.float32(np.sin(angle))
    light = 1.0 + np.float32(rng.uniform(-0.5, 0.5)) * (ramp_u + ramp_v)  # [H, W]
    if rng.random() < 0.4:
        light *= _shadow(rng, height, width)
    # In-place arithmetic: this function dominates render time on large images.
    img *= light[:, :, None]
    img *= gain[None, None, :]
    # Luminance noise (one draw per pixel, shared by the channels) is a third of
    # the cost of per-channel noise and looks the same after JPEG.
    noise = rng.standard_normal((height, width, 1), dtype=np.float32)
    noise *= np.float32(rng.uniform(0.0, 10.0))
    img += noise
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


def _shadow(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A cast shadow: a random quadrilateral darkened to 55-85%. float32 [H, W]."""
    mask = Image.new("L", (width, height), 0)
    corners = rng.uniform(-0.2, 1.2, size=(4, 2)) * np.array([width, height])
    ImageDraw.Draw(mask).polygon([tuple(c) for c in corners.tolist()], fill=1)
    darkness = np.float32(rng.uniform(0.55, 0.85))
    return np.where(np.asarray(mask) > 0, darkness, np.float32(1.0)).astype(np.float32)
