"""Builders for the scene's foreground objects: vehicles, pedestrians, trees.

Each builder samples an object's shape and colours from `rng` and returns a
`SceneObject` in image coordinates. Sizes are in metres and shrink with depth
through the camera, which is what makes far objects small.
"""

from __future__ import annotations

import numpy as np

from models.synthetic_geometry import (
    Camera,
    Color,
    Part,
    SceneObject,
    billboard,
    box_hull,
    shade,
)

CLASS_VEGETATION = 4
CLASS_VEHICLE = 5
CLASS_PEDESTRIAN = 6

_CAR_COLORS: tuple[Color, ...] = (
    (200, 30, 30),
    (30, 60, 160),
    (230, 230, 230),
    (20, 20, 24),
    (130, 130, 135),
    (190, 190, 195),
    (40, 110, 60),
    (220, 170, 20),
    (110, 40, 20),
    (70, 90, 120),
)
_SKIN: tuple[Color, ...] = ((245, 205, 170), (200, 150, 110), (140, 95, 60), (90, 60, 40))
_GLASS: Color = (40, 55, 70)
_TYRE: Color = (15, 15, 15)


def _jitter(rng: np.random.Generator, color: Color, amount: int = 18) -> Color:
    noise = rng.integers(-amount, amount + 1, size=3)
    return tuple(int(np.clip(c + n, 0, 255)) for c, n in zip(color, noise, strict=True))  # type: ignore[return-value]


def vehicle(
    rng: np.random.Generator, cam: Camera, x: float, z: float, crossing: bool = False
) -> tuple[SceneObject, float]:
    """A car, van or bus whose near end is at depth z, centred laterally at x.

    Along-street vehicles have their length along z; crossing ones along x
    (seen side-on). The silhouette is the union of body, cabin and wheel boxes.

    Returns:
      The object and its length in metres (for spacing a queue of vehicles).
    """
    kind = rng.choice(3, p=(0.75, 0.17, 0.08))
    length = (rng.uniform(3.8, 4.9), rng.uniform(4.8, 5.6), rng.uniform(9.0, 12.0))[kind]
    width = (rng.uniform(1.65, 1.9), rng.uniform(1.8, 2.0), rng.uniform(2.4, 2.55))[kind]
    body_top = (rng.uniform(0.95, 1.1), rng.uniform(1.6, 1.9), rng.uniform(2.6, 2.9))[kind]
    roof = (rng.uniform(1.4, 1.55), body_top + 0.05, body_top + 0.05)[kind]
    body = _jitter(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))])

    def extent(lat0: float, lat1: float, lon0: float, lon1: float) -> tuple:
        # (x-range, z-range) of a sub-box given lateral/longitudinal offsets from the near end.
        if crossing:
            return (x - length / 2 + lon0, x - length / 2 + lon1), (z + lat0, z + lat1)
        return (x - width / 2 + lat0, x - width / 2 + lat1), (z + lon0, z + lon1)

    parts: list[Part] = []
    wheel_r = 0.33 if kind < 2 else 0.5
    for lat in (0.1, width - 0.35):
        for lon in (0.5, length - 0.5 - 2 * wheel_r):
            xr, zr = extent(lat, lat + 0.25, lon, lon + 2 * wheel_r)
            parts.append(Part("poly", box_hull(cam, xr, (0.0, 2 * wheel_r), zr), _TYRE))
    xr, zr = extent(0.0, width, 0.0, length)
    parts.append(Part("poly", box_hull(cam, xr, (0.3, body_top), zr), body))
    if kind == 0:
        xr, zr = extent(0.12, width - 0.12, 0.25 * length, 0.8 * length)
        parts.append(Part("poly", box_hull(cam, xr, (body_top, roof), zr), _GLASS))
    else:
        xr, zr = extent(0.05, width - 0.05, 0.0, 0.02)
        top = body_top - 0.15
        parts.append(Part("poly", box_hull(cam, xr, (top - 0.5, top), zr), _GLASS))
    # The face nearest the camera, darker for a sense of volume.
    xr, zr = extent(0.0, width, 0.0, 0.01)
    parts.append(Part("poly", box_hull(cam, xr, (0.3, body_top * 0.7), zr), shade(body, 0.8)))
    return SceneObject(CLASS_VEHICLE, z, tuple(parts), True), float(length)


def pedestrian(rng: np.random.Generator, cam: Camera, x: float, z: float) -> SceneObject:
    """A person standing or walking with feet at (x, z), as a camera-facing sprite."""
    h = rng.uniform(1.55, 1.95) if rng.random() > 0.15 else rng.uniform(1.05, 1.45)
    stride = rng.uniform(0.0, 0.22)
    swing = rng.uniform(-0.12, 0.12)
    shirt = _jitter(rng, tuple(int(c) for c in rng.integers(20, 235, size=3)), 0)
    pants = _jitter(
        rng, ((30, 35, 60), (40, 40, 40), (120, 110, 90), (70, 50, 40))[rng.integers(4)]
    )
    skin = _SKIN[rng.integers(len(_SKIN))]
    hip, shoulder = 0.5 * h, 0.82 * h
    legs = [
        np.array([[-0.13, hip], [-0.01, hip], [-0.02 - stride, 0.0], [-0.14 - stride, 0.0]]),
        np.array([[0.01, hip], [0.13, hip], [0.14 + stride, 0.0], [0.02 + stride, 0.0]]),
    ]
    torso = np.array([[-0.22, shoulder], [0.22, shoulder], [0.16, hip - 0.03], [-0.16, hip - 0.03]])
    arms = [
        np.array(
            [
                [-0.24, shoulder],
                [-0.16, shoulder],
                [-0.2 + swing, 0.46 * h],
                [-0.28 + swing, 0.46 * h],
            ]
        ),
        np.array(
            [[0.16, shoulder], [0.24, shoulder], [0.28 - swing, 0.46 * h], [0.2 - swing, 0.46 * h]]
        ),
    ]
    head_r = 0.065 * h
    head = billboard(
        cam,
        x,
        z,
        np.array([[-head_r, 0.935 * h + 1.15 * head_r], [head_r, 0.935 * h - 1.15 * head_r]]),
    )
    parts = [Part("poly", billboard(cam, x, z, leg), pants) for leg in legs]
    parts.append(Part("poly", billboard(cam, x, z, torso), shirt))
    parts += [Part("poly", billboard(cam, x, z, arm), shade(shirt, 0.85)) for arm in arms]
    parts.append(Part("ellipse", head.ravel(), skin))
    return SceneObject(CLASS_PEDESTRIAN, z, tuple(parts), True)


def tree(rng: np.random.Generator, cam: Camera, x: float, z: float) -> SceneObject:
    """A street tree: a trunk and a crown of overlapping ellipses (all vegetation)."""
    trunk_h = rng.uniform(1.8, 3.2)
    radius = rng.uniform(1.2, 2.6)
    green = _jitter(rng, (50, 110, 45), 25)
    parts = [
        Part(
            "poly",
            billboard(
                cam,
                x,
                z,
                np.array(
                    [[-0.15, trunk_h + 0.5], [0.15, trunk_h + 0.5], [0.18, 0.0], [-0.18, 0.0]]
                ),
            ),
            (90, 65, 40),
        )
    ]
    for _ in range(int(rng.integers(3, 7))):
        cx, cy = rng.normal(0.0, 0.45 * radius), trunk_h + radius + rng.normal(0.0, 0.35 * radius)
        r = radius * rng.uniform(0.55, 0.9)
        box = billboard(cam, x, z, np.array([[cx - r, cy + r], [cx + r, cy - r]]))
        parts.append(Part("ellipse", box.ravel(), shade(green, rng.uniform(0.75, 1.2))))
    return SceneObject(CLASS_VEGETATION, z, tuple(parts), False)


def hedge(rng: np.random.Generator, cam: Camera, x: float, z0: float, z1: float) -> SceneObject:
    """A hedge along a facade from depth z0 to z1 at lateral position x (vegetation)."""
    top = rng.uniform(0.6, 1.3)
    color = _jitter(rng, (45, 95, 40), 20)
    hull = box_hull(cam, (x - 0.4, x + 0.4), (0.0, top), (z0, z1))
    return SceneObject(CLASS_VEGETATION, z0, (Part("poly", hull, color),), False)
