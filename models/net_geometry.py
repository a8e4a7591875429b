"""Input and output grids of the bundled networks, shared by training and export.

Kept free of TensorFlow imports so that render workers (spawned processes) start fast.
Images are stretched to INPUT_SIZE x INPUT_SIZE. The decoder's features and the
centre heatmaps are at OUTPUT_STRIDE; the dense heads (semantic logits, thing
segmentation, offsets) are at DENSE_STRIDE: each feature cell predicts its
(OUTPUT_STRIDE / DENSE_STRIDE)^2 sub-cells (a sub-pixel convolution), because
thin objects (far pedestrians are 2-5 input pixels wide) are lost on the coarser grid.
"""

INPUT_SIZE = 256
OUTPUT_STRIDE = 2
DENSE_STRIDE = 1
