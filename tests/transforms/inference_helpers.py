"""Helpers for the tests of the segmentation transforms (semantic.py, instance.py)."""

from __future__ import annotations

import numpy as np
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult

from transforms.elements import DecodedImage, ImageRef


def decoded(image_id: str, pixels: np.ndarray | None, **changes: object) -> DecodedImage:
    """A DecodedImage for tests; height/width follow the pixels unless overridden."""
    height, width = (0, 0) if pixels is None else pixels.shape[:2]
    image = DecodedImage(
        ref=ImageRef(image_id=image_id, source=f"/data/{image_id}.png", record_index=0),
        pixels=pixels,
        width=width,
        height=height,
        filename=f"{image_id}.png",
        source_id="",
        content_sha256="",
        ground_truth=None,
    )
    return image._replace(**changes)


def committed_metric(result: PipelineResult, namespace: str, name: str) -> object:
    """The committed value of the one counter or distribution `namespace`/`name`."""
    query = result.metrics().query(MetricsFilter().with_namespace(namespace).with_name(name))
    found = query["counters"] + query["distributions"]
    assert len(found) == 1, f"expected one metric {namespace}/{name}, found {found}"
    return found[0].committed
