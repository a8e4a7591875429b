"""models.train_finalize: its training log read back, and what its command passes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import networks, train_finalize
from models.train_finalize import exported_with_mirror_average, split_earlier_log, training_log

BUNDLED = Path(__file__).resolve().parents[2] / "models" / "bundled"


def test_mirror_averaging_is_read_from_the_training_log(tmp_path):
    assert not exported_with_mirror_average(tmp_path)  # No log: an export from before.
    (tmp_path / "training_log.json").write_text('{"seed": 0}')
    assert not exported_with_mirror_average(tmp_path)
    (tmp_path / "training_log.json").write_text('{"mirror_average": true}')
    assert exported_with_mirror_average(tmp_path)


def test_the_bundled_export_is_logged_as_a_single_pass_at_its_input_shape():
    # The log `finalize` wrote for the bundled models: reader and writer agree on the
    # file and the keys (test_export checks the export's logits are one network pass;
    # test_bundled_models checks the 320x640 signature).
    assert not exported_with_mirror_average(BUNDLED)
    assert training_log(BUNDLED)["input_shape"] == [320, 640]


def test_the_training_log_is_read_from_the_export_directory(tmp_path):
    assert training_log(tmp_path) is None  # An export with no log.
    (tmp_path / "training_log.json").write_text('{"seed": 0, "validation": {"miou": 0.9}}')
    assert training_log(tmp_path) == {"seed": 0, "validation": {"miou": 0.9}}


def test_the_earlier_stages_log_comes_from_the_init_from_export(tmp_path):
    # A first stage: no init_from, no earlier log.
    assert split_earlier_log({"seed": 0}) == ({"seed": 0}, None)
    # A fine-tuning stage: the log of the export it started from.
    (tmp_path / "training_log.json").write_text('{"seed": 2}')
    run_info = {"seed": 3, "init_from": str(tmp_path)}
    assert split_earlier_log(run_info) == (run_info, {"seed": 2})
    # A rerun of finalize: the log it already holds wins over the directory's, and the
    # key leaves run_info so that finalize can put it last.
    rerun = {"seed": 3, "init_from": str(tmp_path), "init_from_training_log": {"seed": 1}}
    assert split_earlier_log(rerun) == ({"seed": 3, "init_from": str(tmp_path)}, {"seed": 1})
    assert "init_from_training_log" in rerun  # The caller's dict is not changed.


class _NoWeights:
    """Stands in for a network in main(): loading weights is not what is tested."""

    def load_weights(self, path: Path) -> None:
        pass


@pytest.fixture
def finalize_call(monkeypatch) -> dict:
    """Stubs the networks and `finalize`; main()'s call to it lands in the returned dict
    as {"args": positional args, "kwargs": keyword args}."""
    call = {}
    monkeypatch.setattr(networks, "semantic_net", _NoWeights)
    monkeypatch.setattr(networks, "instance_net", _NoWeights)
    monkeypatch.setattr(
        train_finalize, "finalize", lambda *args, **kwargs: call.update(args=args, kwargs=kwargs)
    )
    return call


@pytest.mark.parametrize(("given", "expected"), [(["--valley_ratio", "none"], None), ([], 0.9)])
def test_valley_ratio_reaches_the_export_config(tmp_path, finalize_call, given, expected):
    train_finalize.main(["--work_dir", str(tmp_path), "--output", str(tmp_path), *given])
    base = finalize_call["args"][-1]
    assert base.valley_ratio == expected
    assert base.nms_kernel == 5


@pytest.mark.parametrize(
    ("log", "given", "expected"),
    [
        (None, [], (320, 640)),  # No log: INPUT_SHAPE.
        ('{"input_shape": [256, 512]}', [], (256, 512)),  # The shape the weights trained at.
        ('{"input_shape": [256, 512]}', ["--input_shape", "384x768"], (384, 768)),
    ],
)
def test_the_exports_input_shape_comes_from_the_log_unless_given(
    tmp_path, finalize_call, log, given, expected
):
    if log is not None:
        (tmp_path / "training_log.json").write_text(log)
    train_finalize.main(["--work_dir", str(tmp_path), "--output", str(tmp_path), *given])
    assert finalize_call["kwargs"]["input_shape"] == expected
    run_info = finalize_call["args"][3]
    assert "input_shape" not in run_info  # finalize records the shape it exports at.


@pytest.mark.parametrize("ratio", ["0", "1.5"])
def test_valley_ratio_out_of_range_stops_before_any_work(monkeypatch, capsys, ratio):
    monkeypatch.setattr(networks, "semantic_net", lambda: pytest.fail("weights were loaded"))
    with pytest.raises(SystemExit):
        train_finalize.main(["--output", "/nonexistent", "--valley_ratio", ratio])
    assert "valley_ratio must be in (0, 1]" in capsys.readouterr().err
