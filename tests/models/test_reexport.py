"""models.reexport: the same weights and post-processing, written by today's export code."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from models.export import DEFAULT_POSTPROCESS, export_models
from models.networks import instance_net, semantic_net
from models.reexport import main, reexport

_SHAPE = (64, 128)


def _signature(model_dir: Path, name: str) -> object:
    return tf.saved_model.load(str(model_dir / name)).signatures["serving_default"]


def _trained_dir(tmp_path: Path, score_power: float) -> Path:
    """An export of fresh networks with the training log `models.train` would write."""
    source = tmp_path / "source"
    postprocess = dataclasses.replace(DEFAULT_POSTPROCESS, score_power=score_power)
    tf.keras.utils.set_random_seed(3)
    instance = instance_net()
    # Fresh heads find nothing (centres start just below the threshold, background
    # wins the thing segmentation): biased towards vehicle centres and vehicle cells, so
    # the export detects, and its scores show which score_power it was written with.
    kernel, bias = instance.get_layer("ins_center_logits").get_weights()
    instance.get_layer("ins_center_logits").set_weights([kernel, bias + 4.0])
    kernel, bias = instance.get_layer("ins_thing_logits").get_weights()
    vehicle = np.arange(bias.size) % 3 == 1  # Sub-pixel channels: index % 3 is the class.
    instance.get_layer("ins_thing_logits").set_weights([kernel, bias + 10.0 * vehicle])
    export_models(
        semantic_net(),
        instance,
        source,
        postprocess,
        mirror_average=False,
        input_shape=_SHAPE,
    )
    log = {"postprocess": dataclasses.asdict(postprocess), "input_shape": list(_SHAPE)}
    (source / "training_log.json").write_text(json.dumps(log))
    return source


def test_reexport_keeps_weights_shape_and_postprocessing(tmp_path: Path) -> None:
    source = _trained_dir(tmp_path, score_power=0.25)
    output = tmp_path / "output"
    reexport(source, output)

    image = tf.constant(np.random.default_rng(0).integers(0, 256, (1, *_SHAPE, 3), np.uint8))
    before, after = _signature(source, "instance"), _signature(output, "instance")
    assert after.structured_input_signature[1]["images"].shape.as_list() == [None, *_SHAPE, 3]
    want, got = before(images=image), after(images=image)
    assert set(got) == set(want)
    assert float(tf.reduce_max(want["detection_scores"])) > 0.0  # Scores to compare.
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-5)
    semantic = _signature(output, "semantic")(images=image)["logits"].numpy()
    np.testing.assert_allclose(got["logits"].numpy(), semantic, atol=1e-4)
    assert json.loads((output / "training_log.json").read_text())["postprocess"][
        "score_power"
    ] == pytest.approx(0.25)
    for name in ("semantic", "semantic_shared", "instance"):
        assert (output / f"{name}.json").is_file()


def test_reexport_without_a_training_log_is_refused(tmp_path: Path, capsys) -> None:
    source = _trained_dir(tmp_path, score_power=0.5)
    (source / "training_log.json").unlink()
    with pytest.raises(SystemExit):
        main(["--model_dir", str(source)])
    assert "no training_log.json with 'postprocess'" in capsys.readouterr().err


def test_reexport_at_another_input_shape_records_it_and_keeps_it(tmp_path: Path) -> None:
    source = _trained_dir(tmp_path, score_power=0.25)
    larger = tmp_path / "larger"
    main(["--model_dir", str(source), "--output", str(larger), "--input_shape", "80x160"])
    signature = _signature(larger, "instance")
    assert signature.structured_input_signature[1]["images"].shape.as_list() == [None, 80, 160, 3]
    assert json.loads((larger / "instance.json").read_text())["input_size"] == [80, 160]
    log = json.loads((larger / "training_log.json").read_text())
    assert log["input_shape"] == [64, 128]  # Still the size the weights trained at.
    assert log["export_input_shape"] == [80, 160]
    # The same weights: a re-export of the copy, in place and without the flag, keeps the size.
    image = tf.constant(np.random.default_rng(1).integers(0, 256, (1, 80, 160, 3), np.uint8))
    before = signature(images=image)["logits"].numpy()
    reexport(larger, larger)
    assert json.loads((larger / "semantic.json").read_text())["input_size"] == [80, 160]
    after = _signature(larger, "instance")(images=image)["logits"].numpy()
    np.testing.assert_allclose(after, before, atol=1e-5)
    # Back at the trained size, the log drops the key again.
    reexport(larger, larger, (64, 128))
    assert "export_input_shape" not in json.loads((larger / "training_log.json").read_text())


def test_reexport_refuses_an_input_shape_the_encoder_cannot_take(tmp_path: Path, capsys) -> None:
    source = _trained_dir(tmp_path, score_power=0.5)
    with pytest.raises(SystemExit):
        main(
            ["--model_dir", str(source), "--output", str(tmp_path / "o"), "--input_shape", "70x140"]
        )
    assert "multiple" in capsys.readouterr().err
