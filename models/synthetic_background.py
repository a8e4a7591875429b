"""The static street: sky, sidewalks, road with markings, building facades.

`street_layers` returns the background as an ordered list of (class_id, Part)
to paint after the sky gradient; foreground objects are painted over it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.synthetic_geometry import Camera, Color, Part, shade, world_quad

CLASS_SKY = 0
CLASS_BUILDING = 1
CLASS_ROAD = 2
CLASS_SIDEWALK = 3

_FAR_M = 2000.0  # Depth where the street's edges are drawn to (effectively the horizon).
_FACADE_COLORS: tuple[Color, ...] = (
    (170, 80, 60),
    (200, 185, 160),
    (150, 150, 150),
    (225, 215, 195),
    (120, 95, 80),
    (180, 160, 120),
    (95, 100, 110),
)


@dataclass(frozen=True)
class Street:
    """The street's cross-section, metres."""

    road_half_width: float
    sidewalk_width: float

    @property
    def facade_x(self) -> float:
        """Lateral distance of the building facades from the street's centre line."""
        return self.road_half_width + self.sidewalk_width


def sample_street(rng: np.random.Generator) -> Street:
    """Draws a street cross-section: 2 to 4 lanes plus sidewalks."""
    return Street(road_half_width=rng.uniform(3.5, 7.5), sidewalk_width=rng.uniform(2.0, 4.5))


def sky_gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A vertical sky gradient: uint8 [height, width, 3]."""
    palettes = (
        ((70, 130, 210), (190, 215, 240)),  # Clear.
        ((150, 155, 165), (210, 210, 215)),  # Overcast.
        ((60, 70, 130), (245, 160, 100)),  # Dusk.
    )
    top, bottom = (np.asarray(c, dtype=np.float32) for c in palettes[rng.integers(len(palettes))])
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    column = top[None, :] * (1.0 - t) + bottom[None, :] * t  # [H, 3]
    return np.broadcast_to(column[:, None, :], (height, width, 3)).astype(np.uint8)


def street_layers(rng: np.random.Generator, cam: Camera, street: Street) -> list[tuple[int, Part]]:
    """The ground and buildings, far-to-near paint order, as (class_id, Part) pairs."""
    h, w = cam.height, cam.width
    layers: list[tuple[int, Part]] = []
    sidewalk = np.array([[-w, cam.horizon], [2 * w, cam.horizon], [2 * w, 2 * h], [-w, 2 * h]])
    layers.append((CLASS_SIDEWALK, Part("poly", sidewalk, _gray(rng, 165))))
    r = street.road_half_width
    z_near = cam.nearest_ground_depth * 0.5
    road = world_quad(cam, [(-r, 0, _FAR_M), (r, 0, _FAR_M), (r, 0, z_near), (-r, 0, z_near)])
    layers.append((CLASS_ROAD, Part("poly", road, _gray(rng, 75))))
    layers += [(CLASS_ROAD, p) for p in _markings(rng, cam, street, z_near)]
    if rng.random() < 0.5:
        layers += [(CLASS_BUILDING, p) for p in _end_wall(rng, cam, street)]
    for side in (-1.0, 1.0):
        layers += [(CLASS_BUILDING, p) for p in _facades(rng, cam, street, side)]
    return layers


def _gray(rng: np.random.Generator, level: int) -> Color:
    g = int(np.clip(level + rng.integers(-25, 26), 0, 255))
    tint = rng.integers(-6, 7, size=3)
    return tuple(int(np.clip(g + t, 0, 255)) for t in tint)  # type: ignore[return-value]


def _markings(rng: np.random.Generator, cam: Camera, street: Street, z_near: float) -> list[Part]:
    """Dashed lane lines and, sometimes, a zebra crossing (both still class road)."""
    paint: Color = (225, 225, 215)
    parts: list[Part] = []
    lanes = round(street.road_half_width / 3.5)
    dash, gap = rng.uniform(2.0, 4.0), rng.uniform(4.0, 8.0)
    for k in range(-lanes + 1, lanes):
        x = k * street.road_half_width / lanes
        for z0 in np.arange(z_near + rng.uniform(0, gap), 120.0, dash + gap):
            quad = [
                (x - 0.08, 0, z0),
                (x + 0.08, 0, z0),
                (x + 0.08, 0, z0 + dash),
                (x - 0.08, 0, z0 + dash),
            ]
            parts.append(Part("poly", world_quad(cam, quad), paint, decor=True))
    if rng.random() < 0.3:
        z0 = rng.uniform(cam.nearest_ground_depth, 25.0)
        for x in np.arange(-street.road_half_width, street.road_half_width - 0.5, 1.0):
            quad = [(x, 0, z0), (x + 0.5, 0, z0), (x + 0.5, 0, z0 + 3.0), (x, 0, z0 + 3.0)]
            parts.append(Part("poly", world_quad(cam, quad), paint, decor=True))
    return parts


def _facades(rng: np.random.Generator, cam: Camera, street: Street, side: float) -> list[Part]:
    """Building facades along one side of the street, with windows."""
    x = side * street.facade_x
    parts: list[Part] = []
    z = 0.5
    while z < _FAR_M:
        length = rng.uniform(8.0, 30.0) * (1.0 if z < 150 else 8.0)
        top = rng.uniform(cam.cam_height + 2.0, 30.0)
        color = _jitter_color(rng)
        wall = world_quad(cam, [(x, 0, z), (x, top, z), (x, top, z + length), (x, 0, z + length)])
        parts.append(Part("poly", wall, color))
        if z < 120.0:
            parts += _windows(rng, cam, x, z, length, top, color)
        z += length
    return parts


def _windows(
    rng: np.random.Generator,
    cam: Camera,
    x: float,
    z0: float,
    length: float,
    top: float,
    wall: Color,
) -> list[Part]:
    win_w, win_h = rng.uniform(0.8, 1.6), rng.uniform(1.0, 1.8)
    pitch_z, pitch_y = win_w + rng.uniform(0.8, 2.5), rng.uniform(2.8, 3.5)
    glass = shade(wall, rng.uniform(0.35, 0.6))
    # Skip windows that would project to less than ~2 pixels: they only cost time.
    if cam.pixels_per_metre(z0 + length) * win_w < 2.0 and cam.pixels_per_metre(z0) * win_w < 2.0:
        return []
    ys = np.arange(1.2, top - win_h - 0.5, pitch_y)
    zs = np.arange(z0 + 0.6, z0 + length - win_w - 0.3, pitch_z)
    if len(ys) == 0 or len(zs) == 0:
        return []
    # All windows' corners projected at once: [rows, cols, 4 corners, 2].
    yy, zz = np.meshgrid(ys, zs, indexing="ij")
    corner_y = yy[..., None] + np.array([0.0, win_h, win_h, 0.0])
    corner_z = zz[..., None] + np.array([0.0, 0.0, win_w, win_w])
    quads = cam.project(np.full(corner_y.shape, x), corner_y, corner_z).reshape(-1, 4, 2)
    return [Part("poly", quad, glass, decor=True) for quad in quads]


def _end_wall(rng: np.random.Generator, cam: Camera, street: Street) -> list[Part]:
    """A building across the far end of the street."""
    z = rng.uniform(80.0, 300.0)
    top = rng.uniform(cam.cam_height + 5.0, 45.0)
    half = street.facade_x + 40.0
    wall = world_quad(cam, [(-half, 0, z), (-half, top, z), (half, top, z), (half, 0, z)])
    return [Part("poly", wall, _jitter_color(rng))]


def _jitter_color(rng: np.random.Generator) -> Color:
    base = _FACADE_COLORS[rng.integers(len(_FACADE_COLORS))]
    noise = rng.integers(-20, 21, size=3)
    return tuple(int(np.clip(c + n, 0, 255)) for c, n in zip(base, noise, strict=True))  # type: ignore[return-value]
