import models  # noqa: F401  (turns on TensorFlow's oneDNN kernels before TF loads)
