"""The factories of a model's compiled TensorFlow pre- and post-processing, in one place.

The loader builds each model's `tf.function`s through this module
(`postprocess.make_preprocess_fn(...)`, looked up at load time), so patching
the three factories here instruments every model (benchmarks.tracing counts
their traces). The work itself lives in one module per concern:

  * models.preprocess: resize (stretch / letterbox / none), normalise, and the
    content box that maps outputs back to the original image;
  * models.semantic_postprocess: raw semantic output -> label ids at full size;
  * models.instance_postprocess: detections -> kept, sorted boxes and masks,
    pasted as box windows by models.mask_paste.
"""

from __future__ import annotations

from models.instance_postprocess import make_instance_postprocess_fn
from models.preprocess import make_preprocess_fn
from models.semantic_postprocess import make_semantic_postprocess_fn

__all__ = ["make_instance_postprocess_fn", "make_preprocess_fn", "make_semantic_postprocess_fn"]
