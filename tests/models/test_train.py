"""models.train: the training loop's batches and its config checks."""

from __future__ import annotations

import numpy as np
import pytest

from models import train
from models.train import TrainConfig, _batch, _prefetched_batches
from models.train_data import TrainingSet


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


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_shape": (320, 650)}, "multiples of 16"),
        ({"input_shape": (128, 256), "crop": 192}, "crop 192 does not fit the 128x256 input"),
        ({"pedestrian_offset_weight": 0.0}, "pedestrian_offset_weight must be positive"),
    ],
)
def test_a_config_that_cannot_train_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_a_crop_larger_than_the_input_stops_before_rendering(monkeypatch, capsys):
    monkeypatch.setattr(train, "train", lambda *args: pytest.fail("training started"))
    with pytest.raises(SystemExit):
        train.main(["--output", "/nonexistent", "--input_shape", "128x256", "--crop", "192"])
    assert "crop 192 does not fit the 128x256 input" in capsys.readouterr().err
