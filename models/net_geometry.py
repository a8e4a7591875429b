"""Input and output grids of the bundled networks, shared by training and export.

Kept free of TensorFlow imports so that render workers (spawned processes) start fast.
Images are stretched to INPUT_SHAPE = (height, width). The input is twice as
wide as tall because most images are landscape (aspect ratios 9:16 to 2:1, mean
about 1.3:1) and pedestrians, side by side in groups, are told apart
horizontally: at 256x256 a 2:1 image is squeezed horizontally twice as much as
vertically, and far pedestrians to 1-2 pixels; each step to 256x384 and 256x512
raised pedestrian AP (the model card measures both). The decoder's features and
the centre heatmaps are at OUTPUT_STRIDE; the dense heads (semantic logits,
thing segmentation, offsets) are at DENSE_STRIDE: each feature cell predicts its
(OUTPUT_STRIDE / DENSE_STRIDE)^2 sub-cells (a sub-pixel convolution), because
thin objects (far pedestrians are 2-5 input pixels wide) are lost on the
coarser grid.
"""

ENCODER_STRIDE = 16  # The deepest encoder level's; input sides must be multiples of it.
INPUT_SHAPE = (256, 512)  # (height, width); both multiples of ENCODER_STRIDE.
OUTPUT_STRIDE = 2
DENSE_STRIDE = 1
