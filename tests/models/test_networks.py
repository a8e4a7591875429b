"""Tests for the bundled networks' shapes and head fusion (models.networks), by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from models.networks import DepthToSpace, fuse_thing_logits, instance_net, semantic_net


def test_dense_heads_are_per_pixel_and_centres_per_two_pixels():
    images = tf.zeros([2, 64, 96, 3], tf.uint8)
    assert semantic_net()(images)["logits"].shape == (2, 64, 96, 7)
    heads = instance_net()(images)
    assert heads["thing_logits"].shape == (2, 64, 96, 3)
    assert heads["offsets"].shape == (2, 64, 96, 2)
    assert heads["center_logits"].shape == (2, 32, 48, 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_untrained_centre_and_offset_heads_start_at_the_prior_whatever_the_seed(seed):
    # Random weights everywhere else and a random image: the centre heatmaps must still
    # be CenterNet's prior, 0.1, on every cell, and the offsets exactly 0.
    tf.keras.utils.set_random_seed(seed)
    images = tf.constant(np.random.default_rng(seed).integers(0, 256, [2, 64, 96, 3]), tf.uint8)
    heads = instance_net()(images, training=False)
    centre_logits = heads["center_logits"].numpy()
    np.testing.assert_array_equal(centre_logits, centre_logits.flat[0])
    np.testing.assert_allclose(tf.sigmoid(centre_logits).numpy(), 0.1, atol=0.001)
    np.testing.assert_array_equal(heads["offsets"].numpy(), 0.0)
    assert float(tf.math.reduce_std(heads["thing_logits"])) > 0.0


def test_depth_to_space_puts_channels_in_row_major_sub_cells():
    out = DepthToSpace(2)(tf.constant([[[[0.0, 1.0, 2.0, 3.0]]]]))
    np.testing.assert_array_equal(out.numpy()[0, :, :, 0], [[0.0, 1.0], [2.0, 3.0]])


def test_fuse_adds_log_probabilities_of_both_networks():
    instance = {"thing_logits": tf.zeros([1, 1, 1, 3]), "offsets": tf.ones([1, 1, 1, 2])}
    semantic = tf.zeros([1, 1, 1, 7])  # Uniform: 5 stuff classes are "background".
    fused = fuse_thing_logits(instance, semantic)
    third = -math.log(3.0)
    expected = [third + math.log(5 / 7), third - math.log(7), third - math.log(7)]
    np.testing.assert_allclose(fused["thing_logits"].numpy()[0, 0, 0], expected, rtol=1e-6)
    assert fused["offsets"] is instance["offsets"]


def test_fuse_follows_the_semantic_network_when_the_instance_one_is_unsure():
    semantic = np.zeros([1, 1, 1, 7], np.float32)
    semantic[..., 6] = 8.0  # Pedestrian.
    fused = fuse_thing_logits({"thing_logits": tf.zeros([1, 1, 1, 3])}, tf.constant(semantic))
    assert int(tf.argmax(fused["thing_logits"], axis=-1)[0, 0, 0]) == 2
