"""Where things stand in a scene: camera pose and foreground object placement.

Placement deliberately produces the hard cases instance segmentation must
handle: rows of cars parked bumper to bumper along the kerb (each nearer car
hides the front of the one behind), queues of crossing cars side by side,
groups of pedestrians standing shoulder to shoulder, trees occluding and
occluded by traffic, and objects far down the street that are only a few
pixels tall.
"""

from __future__ import annotations

import numpy as np

from models.synthetic_background import Street
from models.synthetic_geometry import Camera, SceneObject, bbox_of_parts
from models.synthetic_objects import CLASS_PEDESTRIAN, hedge, pedestrian, tree, vehicle

# Things smaller than this fraction of the image height are not placed at all.
MIN_VEHICLE_HEIGHT_FRAC = 0.035
MIN_PEDESTRIAN_HEIGHT_FRAC = 0.06


def sample_camera(rng: np.random.Generator, height: int, width: int) -> Camera:
    """A camera 2.5-6 m up, horizon at 30-50% of the height, 55-95 degree horizontal FOV."""
    fov = np.deg2rad(rng.uniform(55.0, 95.0))
    return Camera(
        height=height,
        width=width,
        horizon=height * rng.uniform(0.3, 0.5),
        center_u=width * rng.uniform(0.3, 0.7),
        focal=0.5 * width / np.tan(fov / 2.0),
        cam_height=rng.uniform(2.5, 6.0),
    )


def foreground(rng: np.random.Generator, cam: Camera, street: Street) -> list[SceneObject]:
    """All foreground objects, unsorted; too-small things are already removed."""
    z_min = cam.nearest_ground_depth
    objects: list[SceneObject] = []
    objects += _parked_rows(rng, cam, street, z_min)
    objects += _traffic(rng, cam, street, z_min)
    objects += _pedestrian_groups(rng, cam, street, z_min)
    objects += _vegetation(rng, cam, street, z_min)
    return [o for o in objects if not o.is_thing or _big_enough(o, cam)]


def _big_enough(obj: SceneObject, cam: Camera) -> bool:
    u0, v0, u1, v1 = bbox_of_parts(obj.parts)
    frac = (
        MIN_PEDESTRIAN_HEIGHT_FRAC if obj.class_id == CLASS_PEDESTRIAN else MIN_VEHICLE_HEIGHT_FRAC
    )
    inside = u1 > 0 and v1 > 0 and u0 < cam.width and v0 < cam.height
    return inside and (v1 - v0) >= frac * cam.height


def _parked_rows(
    rng: np.random.Generator, cam: Camera, street: Street, z_min: float
) -> list[SceneObject]:
    """Rows of cars parked bumper to bumper along each kerb."""
    cars = []
    for side in (-1.0, 1.0):
        if rng.random() > 0.65:
            continue
        x = side * (street.road_half_width - rng.uniform(1.0, 1.3))
        z = rng.uniform(0.6 * z_min, 25.0)
        for _ in range(int(rng.integers(2, 7))):
            car, length = vehicle(rng, cam, x + rng.normal(0.0, 0.05), z)
            cars.append(car)
            z += length + rng.uniform(0.15, 1.2)
    return cars


def _traffic(
    rng: np.random.Generator, cam: Camera, street: Street, z_min: float
) -> list[SceneObject]:
    """Moving cars in the lanes, and sometimes a queue of cars crossing the street."""
    cars = []
    r = street.road_half_width
    for _ in range(int(rng.integers(0, 5))):
        cars.append(vehicle(rng, cam, rng.uniform(-r + 1.3, r - 1.3), rng.uniform(z_min, 70.0))[0])
    if rng.random() < 0.35:
        z = rng.uniform(z_min + 4.0, 40.0)
        x = rng.uniform(-r, 0.0)
        for _ in range(int(rng.integers(2, 5))):
            car, length = vehicle(rng, cam, x, z + rng.normal(0.0, 0.3), crossing=True)
            cars.append(car)
            x += length + rng.uniform(-0.3, 0.8)
    return cars


def _pedestrian_groups(
    rng: np.random.Generator, cam: Camera, street: Street, z_min: float
) -> list[SceneObject]:
    """Groups of 1-5 people on the sidewalks, sometimes a group crossing the road."""
    people = []
    groups = int(rng.integers(0, 5))
    for g in range(groups + (1 if rng.random() < 0.3 else 0)):
        if g < groups:
            side = rng.choice((-1.0, 1.0))
            x = side * (street.road_half_width + rng.uniform(0.4, street.sidewalk_width - 0.4))
        else:
            x = rng.uniform(-street.road_half_width, street.road_half_width)
        z = rng.uniform(0.9 * z_min, 35.0)
        for _ in range(int(rng.integers(1, 6))):
            people.append(pedestrian(rng, cam, x, z + rng.uniform(-0.6, 0.6)))
            x += rng.uniform(0.25, 0.65) * rng.choice((-1.0, 1.0))
    return people


def _vegetation(
    rng: np.random.Generator, cam: Camera, street: Street, z_min: float
) -> list[SceneObject]:
    """Rows of street trees and hedges along the facades."""
    plants = []
    for side in (-1.0, 1.0):
        if rng.random() < 0.6:
            x = side * (street.road_half_width + rng.uniform(0.5, 0.9))
            spacing = rng.uniform(7.0, 16.0)
            for z in np.arange(rng.uniform(0.5 * z_min, z_min + spacing), 90.0, spacing):
                plants.append(tree(rng, cam, x, float(z)))
        if rng.random() < 0.3:
            z0 = rng.uniform(0.5 * z_min, 30.0)
            plants.append(
                hedge(rng, cam, side * (street.facade_x - 0.5), z0, z0 + rng.uniform(5.0, 40.0))
            )
    return plants
