"""segbeam's tests, mirroring the source tree."""

import models  # noqa: F401  (TensorFlow's oneDNN kernels on, as in a run, before TF loads)
