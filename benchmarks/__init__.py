"""segbeam's performance harness: `python -m benchmarks.run_benchmarks --help`."""

import models  # noqa: F401  (turns on TensorFlow's oneDNN kernels before TF loads)
