"""Camera and shape builders for the synthetic street scenes.

World coordinates are metres: x to the right of the camera, y up from the
ground, z forward (depth). The camera is a pinhole looking along +z from height
`cam_height`, with a level horizon, so every ground line parallel to the street
runs to one vanishing point. Shapes are returned as lists of `Part`s in image
pixel coordinates (floats), ready to be rasterised with PIL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

# Points closer than this are clamped so projection never divides by ~0.
_MIN_DEPTH_M = 0.3

Color = tuple[int, int, int]


class Part(NamedTuple):
    """One drawable primitive of an object, in image pixel coordinates.

    `kind` is "poly" (coords: float [P, 2] of (u, v) vertices) or "ellipse"
    (coords: float [4] = u0, v0, u1, v1 bounding box). A `decor` part (a window,
    a lane marking) lies on a surface of its own class, so it is painted into
    the RGB image only.
    """

    kind: str
    coords: np.ndarray
    color: Color
    decor: bool = False


class SceneObject(NamedTuple):
    """One object to paint: its class, its depth for painter's ordering, its parts."""

    class_id: int
    depth: float  # Metres; larger is painted first (farther).
    parts: tuple[Part, ...]
    is_thing: bool  # True for countable instances (vehicle, pedestrian).


@dataclass(frozen=True)
class Camera:
    """A level pinhole camera over a flat street.

    Attributes:
      height: Image height in pixels.
      width: Image width in pixels.
      horizon: Image row of the horizon (pixels, float).
      center_u: Image column of the street's vanishing point (pixels, float).
      focal: Focal length in pixels.
      cam_height: Camera height above the ground in metres.
    """

    height: int
    width: int
    horizon: float
    center_u: float
    focal: float
    cam_height: float

    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Projects world points to pixels.

        Args:
          x, y, z: float arrays of the same shape, metres.

        Returns:
          float64 [..., 2] array of (u, v) pixel coordinates.
        """
        z = np.maximum(np.asarray(z, dtype=np.float64), _MIN_DEPTH_M)
        u = self.center_u + self.focal * np.asarray(x, dtype=np.float64) / z
        v = self.horizon + self.focal * (self.cam_height - np.asarray(y, dtype=np.float64)) / z
        return np.stack([u, v], axis=-1)

    @property
    def nearest_ground_depth(self) -> float:
        """Depth (metres) of the ground seen at the bottom image row."""
        return self.focal * self.cam_height / max(self.height - self.horizon, 1.0)

    def pixels_per_metre(self, z: float) -> float:
        """Image scale of an object at depth z, pixels per metre."""
        return self.focal / max(z, _MIN_DEPTH_M)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain hull of a few 2-D points: float [P, 2] -> float [Q, 2]."""
    pts = sorted({(float(p[0]), float(p[1])) for p in points})
    if len(pts) <= 2:
        return np.asarray(pts, dtype=np.float64)

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for p in seq:
            while len(out) >= 2 and _cross(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(list(reversed(pts)))
    return np.asarray(lower[:-1] + upper[:-1], dtype=np.float64)


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def box_hull(
    cam: Camera, x: tuple[float, float], y: tuple[float, float], z: tuple[float, float]
) -> np.ndarray:
    """Image outline (float [Q, 2]) of an axis-aligned world box given by its extents."""
    xs, ys, zs = np.meshgrid(x, y, z, indexing="ij")
    return convex_hull(cam.project(xs.ravel(), ys.ravel(), zs.ravel()))


def world_quad(cam: Camera, corners: list[tuple[float, float, float]]) -> np.ndarray:
    """Projects a planar world polygon (list of (x, y, z)) to float [P, 2] pixels."""
    arr = np.asarray(corners, dtype=np.float64)
    return cam.project(arr[:, 0], arr[:, 1], arr[:, 2])


def billboard(cam: Camera, x: float, z: float, local: np.ndarray) -> np.ndarray:
    """Projects points of a flat, camera-facing sprite standing at (x, z).

    Args:
      local: float [P, 2] of (lateral offset, height) in metres.

    Returns:
      float [P, 2] pixel coordinates.
    """
    return cam.project(x + local[:, 0], local[:, 1], np.full(len(local), z))


def shade(color: Color, factor: float) -> Color:
    """Scales a colour's brightness, clipped to 0..255."""
    return tuple(int(min(255, max(0, c * factor))) for c in color)  # type: ignore[return-value]


def bbox_of_parts(parts: tuple[Part, ...]) -> tuple[float, float, float, float]:
    """Pixel bounding box (u0, v0, u1, v1) of all of an object's parts."""
    us: list[float] = []
    vs: list[float] = []
    for part in parts:
        if part.kind == "poly":
            us += [float(part.coords[:, 0].min()), float(part.coords[:, 0].max())]
            vs += [float(part.coords[:, 1].min()), float(part.coords[:, 1].max())]
        else:
            us += [float(part.coords[0]), float(part.coords[2])]
            vs += [float(part.coords[1]), float(part.coords[3])]
    return min(us), min(vs), max(us), max(vs)
