"""Tests for the SavedModel backend (models.adapters.saved_model): frozen weights, same outputs."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from models.adapters.saved_model import SavedModelBackend

_IMAGES = tf.TensorSpec([None, 2, 2, 3], tf.uint8)


class _Affine(tf.Module):
    """Two outputs from two variables; keys whose sorted order is not their definition order."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = tf.Variable(3.0)
        self.shift = tf.Variable([1.0, 2.0, 4.0])

    @tf.function(input_signature=[_IMAGES])
    def serve(self, ImageTensor: tf.Tensor) -> dict[str, tf.Tensor]:  # noqa: N803 (DeepLab's key)
        x = tf.cast(ImageTensor, tf.float32)
        return {"z_scaled": x * self.scale, "a_shifted": x + self.shift}


class _Lookup(tf.Module):
    """A lookup table (a resource that is not a variable) beside a variable."""

    def __init__(self) -> None:
        super().__init__()
        keys, values = tf.constant([0, 1], tf.int64), tf.constant([10, 20], tf.int64)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, values), default_value=-1
        )
        self.factor = tf.Variable(2, dtype=tf.int64)

    @tf.function(input_signature=[_IMAGES])
    def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"ids": self.table.lookup(tf.cast(images[..., 0], tf.int64)) * self.factor}


def _save(module: tf.Module, path: Path) -> str:
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return str(path)


def test_frozen_signature_keeps_output_names_and_values(tmp_path, caplog):
    path = _save(_Affine(), tmp_path / "affine")
    batch = np.zeros([1, 2, 2, 3], np.uint8)
    batch[0, 0, 0] = [1, 2, 3]
    with caplog.at_level(logging.WARNING, logger="models.adapters.saved_model"):
        backend = SavedModelBackend(path, "serving_default")
        gc.collect()  # The loaded module is dropped once frozen: the constants must suffice.
        outputs = backend.run("ImageTensor", batch)
    assert not caplog.records  # Frozen: no fallback warning.
    assert sorted(outputs) == ["a_shifted", "z_scaled"]
    np.testing.assert_array_equal(outputs["z_scaled"][0, 0, 0], [3.0, 6.0, 9.0])
    np.testing.assert_array_equal(outputs["a_shifted"][0, 0, 0], [2.0, 4.0, 7.0])
    np.testing.assert_array_equal(outputs["a_shifted"][0, 1, 1], [1.0, 2.0, 4.0])
    assert [t.name for t in backend.info.inputs] == ["ImageTensor"]


def test_signature_with_a_lookup_table_runs_unfrozen_with_a_warning(tmp_path, caplog):
    path = _save(_Lookup(), tmp_path / "lookup")
    batch = np.ones([1, 2, 2, 3], np.uint8)
    batch[0, 1, 1, 0] = 7  # Not in the table: default -1.
    with caplog.at_level(logging.WARNING, logger="models.adapters.saved_model"):
        backend = SavedModelBackend(path, "serving_default")
    assert "running its signature unfrozen" in caplog.text
    np.testing.assert_array_equal(backend.run("images", batch)["ids"][0], [[40, 40], [40, -2]])


def test_missing_signature_names_the_ones_there(tmp_path):
    path = _save(_Affine(), tmp_path / "affine")
    with pytest.raises(ValueError, match=r"no signature 'predict'.*\['serving_default'\]"):
        SavedModelBackend(path, "predict")
