"""Tests for the bundled networks' shapes and head fusion (models.networks), by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from models.networks import (
    NUM_CLASSES,
    THING_CLASS_IDS,
    DepthToSpace,
    fuse_thing_logits,
    instance_net,
    semantic_net,
)


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


def test_fuse_multiplies_the_class_probabilities_of_both_networks():
    # Instance network: background / vehicle / pedestrian at 1/4, 1/2, 1/4 (logits 0, ln 2, 0).
    # Semantic network uniform over 7 classes: the 5 stuff ones make background 5/7.
    # Product 5/28, 1/14, 1/28 = (5, 2, 1) / 28, normalised (5, 2, 1) / 8.
    instance = {
        "thing_logits": tf.constant([[[[0.0, math.log(2.0), 0.0]]]]),
        "offsets": tf.ones([1, 1, 1, 2]),
    }
    fused = fuse_thing_logits(instance, tf.zeros([1, 1, 1, 7]))
    probabilities = tf.nn.softmax(fused["thing_logits"]).numpy()[0, 0, 0]
    np.testing.assert_allclose(probabilities, [5 / 8, 2 / 8, 1 / 8], rtol=1e-6)
    assert fused["offsets"] is instance["offsets"]


def test_fuse_equals_the_sum_of_log_softmaxes_up_to_a_constant_per_pixel():
    # Training applies softmax losses to the fused logits and the export takes their
    # argmax and softmax: all three see only the normalised form.
    rng = np.random.default_rng(0)
    thing = tf.constant(rng.normal(0.0, 3.0, [2, 4, 5, 3]), tf.float32)
    semantic = rng.normal(0.0, 3.0, [2, 4, 5, 7]).astype(np.float32)
    stuff = np.log(np.exp(semantic[..., :5]).sum(axis=-1, keepdims=True))
    reference = tf.nn.log_softmax(thing) + tf.nn.log_softmax(
        np.concatenate([stuff, semantic[..., 5:]], axis=-1)
    )
    fused = fuse_thing_logits({"thing_logits": thing}, tf.constant(semantic))["thing_logits"]
    np.testing.assert_allclose(
        tf.nn.log_softmax(fused).numpy(), tf.nn.log_softmax(reference).numpy(), atol=1e-5
    )


def test_thing_classes_are_the_last_class_ids():
    # fuse_thing_logits takes the stuff logits as the leading channels.
    assert tuple(range(NUM_CLASSES - len(THING_CLASS_IDS), NUM_CLASSES)) == THING_CLASS_IDS


def test_fuse_follows_the_semantic_network_when_the_instance_one_is_unsure():
    semantic = np.zeros([1, 1, 1, 7], np.float32)
    semantic[..., 6] = 8.0  # Pedestrian.
    fused = fuse_thing_logits({"thing_logits": tf.zeros([1, 1, 1, 3])}, tf.constant(semantic))
    assert int(tf.argmax(fused["thing_logits"], axis=-1)[0, 0, 0]) == 2
