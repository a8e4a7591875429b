"""Input and output grid of the bundled networks, shared by training and export.

Kept free of TensorFlow imports so that render workers (spawned processes) start fast.
Images are stretched to INPUT_SIZE x INPUT_SIZE; the heads predict at OUTPUT_STRIDE.
"""

INPUT_SIZE = 256
OUTPUT_STRIDE = 2
