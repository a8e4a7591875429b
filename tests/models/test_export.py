"""models.export: what `export_models` writes is a model directory the pipeline loads, and
`restore_exported_weights` reads its weights back into the networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from models.export import DEFAULT_POSTPROCESS, export_models, restore_exported_weights
from models.loader import validate_model
from models.net_geometry import INPUT_SHAPE
from models.networks import DEFAULT_CONFIG, NetConfig, instance_net, semantic_net
from models.spec import load_model_spec
from tests.models.project_labels import PROJECT_CLASS_NAMES

BUNDLED = Path(__file__).resolve().parents[2] / "models" / "bundled"


def test_export_into_a_new_directory_writes_the_label_map_the_specs_name(tmp_path: Path) -> None:
    # `python -m models.train --output DIR` trains for half an hour before it exports:
    # a DIR with no label map in it must not fail there (it did until this test).
    output = tmp_path / "not_yet_created"
    export_models(semantic_net(), instance_net(), output, DEFAULT_POSTPROCESS, mirror_average=False)

    assert (output / "labels.txt").read_text().split() == list(PROJECT_CLASS_NAMES.values())
    for name, task in (
        ("semantic", "semantic"),
        ("semantic_shared", "semantic"),
        ("instance", "instance"),
    ):
        spec = load_model_spec(str(output / f"{name}.json"), task)
        assert spec is not None
        assert spec.class_names == PROJECT_CLASS_NAMES
        assert Path(spec.labels_source) == (output / "labels.txt").resolve()
        validate_model(spec)  # Loads the SavedModel and runs it on a blank image.


def _fresh_networks(config: NetConfig = DEFAULT_CONFIG) -> tuple:
    return semantic_net(config), instance_net(config)


def test_restore_reads_the_bundled_exports_weights() -> None:
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


def test_restored_semantic_network_gives_the_exports_logits() -> None:
    semantic, instance = _fresh_networks()
    restore_exported_weights(semantic, instance, BUNDLED)
    image = np.random.default_rng(0).integers(0, 256, (1, *INPUT_SHAPE, 3), dtype=np.uint8)
    exported = tf.saved_model.load(str(BUNDLED / "semantic")).signatures["serving_default"]

    want = exported(images=tf.constant(image))["logits"].numpy()
    # The bundled export runs the network once (no mirror averaging, its training log).
    direct = semantic(image, training=False)["logits"].numpy()

    np.testing.assert_allclose(direct, want, atol=1e-3)


def test_export_at_another_input_shape_with_mirror_averaging(tmp_path: Path) -> None:
    # A stage trained with --input_shape 64x128 exports at that shape: the signatures,
    # the spec files and the loader's check all say 64x128.
    output = tmp_path / "small"
    export_models(
        semantic_net(),
        instance_net(),
        output,
        DEFAULT_POSTPROCESS,
        mirror_average=True,
        input_shape=(64, 128),
    )
    for task in ("semantic", "instance"):
        signature = tf.saved_model.load(str(output / task)).signatures["serving_default"]
        assert signature.structured_input_signature[1]["images"].shape.as_list() == [
            None,
            64,
            128,
            3,
        ]
        spec = load_model_spec(str(output / f"{task}.json"), task)
        assert spec.input_size == (64, 128)
        validate_model(spec)
    # Averaged over the image and its mirror, so mirroring the input mirrors the logits
    # (a network run on one view is not equivariant: its padding and kernels are not
    # symmetric).
    semantic = tf.saved_model.load(str(output / "semantic")).signatures["serving_default"]
    image = np.random.default_rng(1).integers(0, 256, (1, 64, 128, 3), dtype=np.uint8)
    logits = semantic(images=tf.constant(image))["logits"].numpy()
    mirrored = semantic(images=tf.constant(image[:, :, ::-1]))["logits"].numpy()
    np.testing.assert_allclose(mirrored[:, :, ::-1], logits, atol=1e-4)


def test_restore_from_a_directory_without_an_export_is_refused(tmp_path: Path) -> None:
    semantic, instance = _fresh_networks()
    with pytest.raises(ValueError, match="no instance export"):
        restore_exported_weights(semantic, instance, tmp_path)


def test_restore_of_another_architectures_weights_is_refused(tmp_path: Path) -> None:
    narrow_semantic, narrow_instance = _fresh_networks(NetConfig(widths=(8, 16, 32, 48)))
    (tmp_path / "instance" / "variables").mkdir(parents=True)
    tf.train.Checkpoint(net=narrow_instance, semantic=narrow_semantic).write(
        str(tmp_path / "instance" / "variables" / "variables")
    )
    semantic, instance = _fresh_networks()
    with pytest.raises(ValueError, match="do not fit"):
        restore_exported_weights(semantic, instance, tmp_path)
