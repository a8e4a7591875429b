"""Tests for models/spec.py (tiny SavedModels from the session's `model_files`)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from models import spec as model_spec
from models.loader import load_model
from models.spec import (
    BUNDLED_INSTANCE_SPEC,
    BUNDLED_SEMANTIC_SPEC,
    MeanStd,
    ModelSpec,
    load_model_spec,
)
from tests.models.model_files import ModelFiles
from tests.models.project_labels import PROJECT_CLASS_NAMES, PROJECT_LABEL_FILE


@pytest.fixture
def spec_dir(model_files: ModelFiles, tmp_path: Path) -> Path:
    """A fresh directory like models/bundled/: `semantic`, `instance` and labels.txt.

    `semantic` and `instance` link to tiny models with the bundled models' outputs.
    """
    (tmp_path / "semantic").symlink_to(model_files["split"])
    (tmp_path / "instance").symlink_to(model_files["od"])
    shutil.copy(PROJECT_LABEL_FILE, tmp_path / "labels.txt")
    return tmp_path


def _shipped_spec_in(spec_dir: Path, bundled_spec: str) -> str:
    """Copies a shipped spec file (models/bundled/*.json) into spec_dir, onto the tiny models."""
    return shutil.copy(bundled_spec, spec_dir)


def _write(path: Path, keys: dict[str, object]) -> str:
    path.write_text(json.dumps(keys))
    return str(path)


def test_bundled_constants_point_into_the_models_package() -> None:
    models_pkg = Path(__file__).resolve().parents[2] / "models"
    assert Path(BUNDLED_SEMANTIC_SPEC) == models_pkg / "bundled" / "semantic.json"
    assert Path(BUNDLED_INSTANCE_SPEC) == models_pkg / "bundled" / "instance.json"


def test_none_disables_the_model() -> None:
    assert load_model_spec("none", "semantic") is None
    assert load_model_spec("None", "instance") is None


def test_bundled_semantic_spec_format(spec_dir: Path) -> None:
    spec = load_model_spec(_shipped_spec_in(spec_dir, BUNDLED_SEMANTIC_SPEC), "semantic")
    assert spec == ModelSpec(
        task="semantic",
        format="saved_model",
        path=str((spec_dir / "semantic").resolve()),
        signature="serving_default",
        input_key="images",
        input_size=(320, 640),
        resize="stretch",
        input_range="uint8",
        output_format="logits",
        output_key="logits",
        labels=tuple(PROJECT_CLASS_NAMES.items()),
        labels_source=str((spec_dir / "labels.txt").resolve()),
        label_offset=0,
        upsampling="joint_bilateral",
    )
    assert spec.class_names[6] == "pedestrian"
    assert spec.class_name(9) == "class_9"


def test_bundled_instance_spec_format(spec_dir: Path) -> None:
    spec = load_model_spec(_shipped_spec_in(spec_dir, BUNDLED_INSTANCE_SPEC), "instance")
    assert spec is not None
    assert (spec.output_format, spec.label_offset, spec.score_threshold) == ("od_api", -1, 0.5)
    assert spec.input_size == (320, 640)
    assert spec.class_names == PROJECT_CLASS_NAMES


def test_yaml_spec_with_inline_labels_and_mean_std(spec_dir: Path) -> None:
    (spec_dir / "nested").mkdir()
    (spec_dir / "nested" / "spec.yaml").write_text(
        "path: ../semantic\n"
        "input_key: images\n"
        "input_size: [32, 32]\n"
        "resize: letterbox\n"
        "input_range: {mean: [120, 110, 100], std: [60, 60, 60]}\n"
        "output_key: logits\n"
        "output_format: probabilities\n"
        "labels: {1: person, 3: car}\n"
        "label_offset: 1\n"
        "batch_size: 4\n"
    )
    spec = load_model_spec(str(spec_dir / "nested" / "spec.yaml"), "semantic")
    assert spec is not None
    assert spec.path == str((spec_dir / "semantic").resolve())
    assert spec.input_range == MeanStd(mean=(120.0, 110.0, 100.0), std=(60.0, 60.0, 60.0))
    assert spec.class_names == {1: "person", 3: "car"}
    assert (spec.resize, spec.label_offset, spec.batch_size) == ("letterbox", 1, 4)
    assert spec.labels_source == "inline"


def test_model_path_detects_conventions_from_the_signature(spec_dir: Path) -> None:
    semantic = load_model_spec(str(spec_dir / "semantic"), "semantic")
    assert semantic is not None
    assert (semantic.input_key, semantic.input_size, semantic.resize) == (
        "images",
        (32, 32),
        "stretch",
    )
    assert (semantic.output_key, semantic.output_format) == ("logits", "logits")
    assert semantic.labels == ()  # No label file inside the SavedModel directory.
    instance = load_model_spec(str(spec_dir / "instance"), "instance")
    assert instance is not None
    assert (instance.input_key, instance.input_size, instance.resize) == (
        "input_tensor",
        None,
        "none",
    )
    assert (instance.output_format, instance.batch_size) == ("od_api", 1)


def test_model_path_picks_up_a_label_file_inside_the_model(
    model_files: ModelFiles, tmp_path: Path
) -> None:
    model = Path(shutil.copytree(model_files["split"], tmp_path / "split"))
    (model / "label_map.pbtxt").write_text(
        "item { id: 2 name: 'road' } item { id: 4 name: 'tree' }"
    )
    spec = load_model_spec(str(model), "semantic")
    assert spec is not None
    assert spec.class_names == {2: "road", 4: "tree"}
    assert spec.labels_source == str(model / "label_map.pbtxt")


def test_model_path_with_two_outputs_needs_output_key(model_files: ModelFiles) -> None:
    with pytest.raises(ValueError, match="set `output_key`"):
        load_model_spec(model_files["red"], "semantic")


def test_classifier_is_not_an_instance_model(model_files: ModelFiles) -> None:
    with pytest.raises(ValueError, match=r"neither OD-API.*scores float32"):
        load_model_spec(model_files["classifier"], "instance")


def _error(spec_dir: Path, keys: dict[str, object], task: str = "semantic") -> str:
    with pytest.raises(ValueError, match=r"spec\.json|nowhere") as info:
        load_model_spec(_write(spec_dir / "spec.json", keys), task)  # type: ignore[arg-type]
    return str(info.value)


SEMANTIC_OK = {
    "path": "semantic",
    "input_key": "images",
    "output_key": "logits",
    "output_format": "logits",
    "input_size": [32, 32],
}


@pytest.mark.parametrize(
    ("changes", "task", "expected"),
    [
        ({"colour": 1}, "semantic", "unknown keys ['colour']"),
        ({"format": "onnx"}, "semantic", "`format` must be one of"),
        ({"path": "nowhere"}, "semantic", "does not exist"),
        ({"path": "labels.txt"}, "semantic", "neither a SavedModel directory"),
        ({"path": "."}, "semantic", "holds no saved_model.pb"),
        ({"format": "keras"}, "semantic", "must be a .keras file"),
        ({"signature": 3}, "semantic", "`signature` must be a non-empty string"),
        ({"input_size": [32]}, "semantic", "`input_size` must be [height, width]"),
        ({"input_size": [32, 0]}, "semantic", "`input_size` must be [height, width]"),
        ({"input_size": [32, True]}, "semantic", "`input_size` must be [height, width]"),
        ({"resize": "crop"}, "semantic", "`resize` must be one of"),
        ({"resize": "none"}, "semantic", "remove input_size"),
        ({"input_range": "percent"}, "semantic", "`input_range` must be one of"),
        ({"input_range": {"mean": [1, 2]}}, "semantic", "exactly `mean` and `std`"),
        ({"input_range": {"mean": [1, 2], "std": [1]}}, "semantic", "input_range.mean"),
        ({"input_range": {"mean": [1], "std": [0]}}, "semantic", "values must be > 0"),
        ({"output_format": "od_api"}, "semantic", "for a semantic model"),
        ({"labels": "missing.txt"}, "semantic", "`labels` is invalid: cannot read"),
        ({"labels": ["a", "a", 1]}, "semantic", "`labels` is invalid"),
        ({"label_offset": 0.5}, "semantic", "`label_offset` must be an integer"),
        ({"mask_threshold": 1.5}, "semantic", "`mask_threshold` must be in [0, 1]"),
        ({"mask_threshold": "high"}, "semantic", "`mask_threshold` must be a number"),
        ({"batch_size": 0}, "semantic", "`batch_size` must be >= 1"),
        ({"score_threshold": 0.3}, "semantic", "applies only to instance models"),
        ({"output_key": "logits"}, "instance", "applies only to semantic models"),
        ({"upsampling": "bicubic"}, "semantic", "`upsampling` must be one of"),
        ({"upsampling": 2}, "semantic", "`upsampling` must be a non-empty string"),
        (
            {"upsampling": "joint_bilateral", "output_format": "class_map"},
            "semantic",
            "needs output_format logits or probabilities, not 'class_map'; remove upsampling",
        ),
        ({"upsampling": "bicubic"}, "instance", "`upsampling` must be one of"),
    ],
)
def test_validation_errors_name_the_key_and_the_fix(
    spec_dir: Path, changes: dict[str, object], task: str, expected: str
) -> None:
    keys = dict(SEMANTIC_OK)
    if task == "instance":
        keys.update(path="instance", input_key="input_tensor", output_format="od_api")
        del keys["input_size"], keys["output_key"]
    keys.update(changes)
    message = _error(spec_dir, keys, task)
    assert expected in message
    assert "spec.json" in message or "nowhere" in message


def test_instance_masks_may_be_pasted_with_joint_bilateral_upsampling(spec_dir: Path) -> None:
    keys = {"path": "instance", "input_key": "input_tensor", "output_format": "od_api"}
    path = _write(spec_dir / "spec.json", {**keys, "upsampling": "joint_bilateral"})
    spec = load_model_spec(path, "instance")
    assert spec is not None
    assert spec.upsampling == "joint_bilateral"


def test_resize_without_input_size(spec_dir: Path) -> None:
    keys = {k: v for k, v in SEMANTIC_OK.items() if k != "input_size"}
    assert "needs `input_size: [h, w]`" in _error(spec_dir, {**keys, "resize": "letterbox"})


def test_spec_without_path(spec_dir: Path) -> None:
    assert "has no `path`" in _error(spec_dir, {"input_key": "images"})


def test_spec_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist; pass 'none'"):
        load_model_spec(str(tmp_path / "missing.json"), "semantic")
    (tmp_path / "broken.yaml").write_text("path: [unclosed\n")
    with pytest.raises(ValueError, match="cannot be parsed"):
        load_model_spec(str(tmp_path / "broken.yaml"), "semantic")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_model_spec(str(tmp_path / "list.json"), "semantic")
    with pytest.raises(ValueError, match="does not exist; pass 'none'"):
        load_model_spec(str(tmp_path / "no_model_dir"), "semantic")


def test_fingerprint_covers_the_model_files(
    spec_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    copy = tmp_path_factory.mktemp("fp") / "semantic"
    shutil.copytree(spec_dir / "semantic", copy)
    spec = load_model_spec(
        _write(spec_dir / "a.json", {**SEMANTIC_OK, "path": str(copy)}), "semantic"
    )
    assert spec is not None
    first = spec.fingerprint()
    assert len(first) == 64
    assert first == spec.fingerprint()
    (copy / "variables" / "extra.txt").write_text("x")
    assert spec.fingerprint() != first


def test_to_json_dict_round_trips_through_json(spec_dir: Path) -> None:
    keys = {**SEMANTIC_OK, "input_range": {"mean": [1, 2, 3], "std": [4, 5, 6]}, "labels": ["a"]}
    spec = load_model_spec(_write(spec_dir / "j.json", keys), "semantic")
    assert spec is not None
    loaded = json.loads(json.dumps(spec.to_json_dict()))
    assert loaded["input_range"] == {"mean": [1.0, 2.0, 3.0], "std": [4.0, 5.0, 6.0]}
    assert loaded["labels"] == {"0": "a"}
    assert loaded["input_size"] == [32, 32]
    assert loaded["task"] == "semantic"


def test_models_inside_the_package_resolve_where_it_is_installed(
    model_files: ModelFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The driver's package: a spec and its model under <package>/bundled/.
    driver_package = tmp_path / "driver" / "models"
    shutil.copytree(model_files["split"], driver_package / "bundled" / "semantic")
    shutil.copy(PROJECT_LABEL_FILE, driver_package / "bundled" / "labels.txt")
    spec_file = _write(
        driver_package / "bundled" / "semantic.json", {**SEMANTIC_OK, "labels": "labels.txt"}
    )
    monkeypatch.setattr(model_spec, "MODELS_DIR", driver_package.resolve())
    spec = load_model_spec(spec_file, "semantic")
    assert spec is not None
    assert spec.path == "bundled/semantic"
    assert spec.local_path == str(driver_package.resolve() / "bundled" / "semantic")
    assert spec.to_json_dict()["path"] == "bundled/semantic"
    assert spec.to_json_dict()["resolved_path"] == spec.local_path
    fingerprint = spec.fingerprint()

    # A worker with the package installed elsewhere and the driver's copy gone.
    worker_package = tmp_path / "worker" / "site-packages" / "models"
    shutil.copytree(driver_package, worker_package)
    shutil.rmtree(driver_package)
    monkeypatch.setattr(model_spec, "MODELS_DIR", worker_package.resolve())
    on_worker = pickle.loads(pickle.dumps(spec))
    assert on_worker.local_path == str(worker_package.resolve() / "bundled" / "semantic")
    assert on_worker.fingerprint() == fingerprint
    (class_map,) = load_model(on_worker).predict([np.zeros((5, 9, 3), np.uint8)])
    assert class_map.shape == (5, 9)


def test_models_outside_the_package_keep_their_absolute_path(spec_dir: Path) -> None:
    spec = load_model_spec(_shipped_spec_in(spec_dir, BUNDLED_SEMANTIC_SPEC), "semantic")
    assert spec is not None
    assert Path(spec.path).is_absolute()
    assert spec.local_path == spec.path
