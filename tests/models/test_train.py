"""models.train: the training loop's batches and its --init_from weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from models.net_geometry import INPUT_SHAPE
from models.networks import DEFAULT_CONFIG, NetConfig, instance_net, semantic_net
from models.train import TrainConfig, _batch, _prefetched_batches, restore_exported_weights
from models.train_data import TrainingSet

BUNDLED = Path(__file__).resolve().parents[2] / "models" / "bundled"


def _random_scenes(count: int) -> TrainingSet:
    """Random pixels and maps at the model input size (the batch code only crops them)."""
    rng = np.random.default_rng(7)
    shape = (count, 256, 512)
    return TrainingSet(
        rng.integers(0, 256, (*shape, 3), dtype=np.uint8),
        rng.integers(0, 7, shape, dtype=np.uint8),
        rng.integers(0, 4, shape, dtype=np.uint8),
    )


def test_prefetched_batches_are_the_plain_loops_batches_in_order() -> None:
    data, config = _random_scenes(6), TrainConfig(steps=4, batch_size=2, crop=64)
    plain_rng = np.random.default_rng(3)
    expected = [_batch(data, plain_rng, config) for _ in range(config.steps)]

    got = list(_prefetched_batches(data, np.random.default_rng(3), config))

    assert len(got) == config.steps
    for (images, class_maps, targets), (want_images, want_maps, want_targets) in zip(
        got, expected, strict=True
    ):
        np.testing.assert_array_equal(images.numpy(), want_images.numpy())
        np.testing.assert_array_equal(class_maps.numpy(), want_maps.numpy())
        assert targets.keys() == want_targets.keys()
        for key in targets:
            np.testing.assert_array_equal(targets[key].numpy(), want_targets[key].numpy())


def _fresh_networks(config: NetConfig = DEFAULT_CONFIG) -> tuple:
    return semantic_net(config), instance_net(config)


def test_init_from_restores_the_bundled_exports_weights() -> None:
    semantic, instance = _fresh_networks()
    variables = str(BUNDLED / "instance" / "variables" / "variables")

    restore_exported_weights(semantic, instance, BUNDLED)

    # Independent of the restore: the checkpoint's own tensors under the export's
    # attribute names, compared as a multiset of (shape, sum) with each network's weights.
    reader = tf.train.load_checkpoint(variables)
    for prefix, net in (("net/", instance), ("semantic/", semantic)):
        stored = sorted(
            (tuple(shape), round(float(reader.get_tensor(name).sum()), 3))
            for name, shape in tf.train.list_variables(variables)
            if name.startswith(prefix) and name.endswith("VARIABLE_VALUE")
        )
        restored = sorted((tuple(w.shape), round(float(w.numpy().sum()), 3)) for w in net.weights)
        assert restored == stored


def test_init_from_restores_the_semantic_exports_logits() -> None:
    semantic, instance = _fresh_networks()
    restore_exported_weights(semantic, instance, BUNDLED)
    image = np.random.default_rng(0).integers(0, 256, (1, *INPUT_SHAPE, 3), dtype=np.uint8)
    exported = tf.saved_model.load(str(BUNDLED / "semantic")).signatures["serving_default"]

    want = exported(images=tf.constant(image))["logits"].numpy()
    # The export averages over the image and its mirror (models.mirror_average).
    direct = semantic(image, training=False)["logits"].numpy()
    mirrored = semantic(image[:, :, ::-1], training=False)["logits"].numpy()[:, :, ::-1]

    np.testing.assert_allclose((direct + mirrored) / 2, want, atol=1e-3)


def test_init_from_a_directory_without_an_export_is_refused(tmp_path: Path) -> None:
    semantic, instance = _fresh_networks()
    with pytest.raises(ValueError, match="no instance export"):
        restore_exported_weights(semantic, instance, tmp_path)


def test_init_from_another_architecture_is_refused(tmp_path: Path) -> None:
    narrow_semantic, narrow_instance = _fresh_networks(NetConfig(widths=(8, 16, 32, 48)))
    (tmp_path / "instance" / "variables").mkdir(parents=True)
    tf.train.Checkpoint(net=narrow_instance, semantic=narrow_semantic).write(
        str(tmp_path / "instance" / "variables" / "variables")
    )
    semantic, instance = _fresh_networks()
    with pytest.raises(ValueError, match="do not fit"):
        restore_exported_weights(semantic, instance, tmp_path)
