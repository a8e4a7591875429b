"""Tests for pipeline/options.py: TensorFlow thread settings per worker process, and which
bundled semantic spec a run loads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from models.spec import BUNDLED_INSTANCE_SPEC, BUNDLED_SEMANTIC_SPEC
from pipeline.options import RunConfig, automatic_tf_threads


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], 0),
        (["--direct_running_mode=multi_threading", "--direct_num_workers=2"], 0),
        (["--direct_running_mode=multi_processing", "--direct_num_workers=1"], 8),
        (["--direct_running_mode=multi_processing", "--direct_num_workers=2"], 4),
        (["--direct_running_mode=multi_processing", "--direct_num_workers=3"], 2),
        (["--direct_running_mode=multi_processing", "--direct_num_workers=1000"], 1),
    ],
)
def test_automatic_tf_threads_on_8_cores(
    args: list[str], expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert automatic_tf_threads(PipelineOptions(args)) == expected


def test_explicit_tf_threads_win_and_reach_the_config(tmp_path: os.PathLike) -> None:
    args = ["--output", str(tmp_path), "--direct_running_mode=multi_processing"]
    config = RunConfig.from_options(PipelineOptions([*args, "--tf_threads=3"]))
    assert config.tf_threads == 3
    assert config.to_json_dict()["tf_threads"] == 3


def test_negative_tf_threads_are_refused(tmp_path: os.PathLike) -> None:
    with pytest.raises(ValueError, match="--tf_threads must be >= 0"):
        RunConfig.from_options(PipelineOptions(["--output", str(tmp_path), "--tf_threads=-1"]))


@pytest.mark.parametrize(
    ("flags", "semantic_dir"),
    [
        # Both bundled models: the semantic maps come from the instance export's call.
        ([], "instance"),
        ([f"--semantic_model={BUNDLED_SEMANTIC_SPEC}"], "instance"),
        # Semantic only: the semantic network alone, not the instance export's two.
        (["--instance_model=none"], "semantic"),
    ],
)
def test_bundled_semantic_model_is_shared_only_with_the_bundled_instance_model(
    tmp_path: os.PathLike, flags: list[str], semantic_dir: str
) -> None:
    config = RunConfig.from_options(PipelineOptions(["--output", str(tmp_path), *flags]))
    assert os.path.basename(config.semantic_spec.local_path) == semantic_dir


def test_another_instance_model_keeps_the_standalone_semantic_model(
    tmp_path: os.PathLike,
) -> None:
    # A copy of the bundled instance spec elsewhere is another model as far as the
    # flags go: the semantic spec stays as given.
    spec = json.loads(Path(BUNDLED_INSTANCE_SPEC).read_text())
    bundled_dir = Path(BUNDLED_INSTANCE_SPEC).parent
    spec.update(path=str(bundled_dir / "instance"), labels=str(bundled_dir / "labels.txt"))
    other = Path(tmp_path) / "instance.json"
    other.write_text(json.dumps(spec))
    args = ["--output", str(Path(tmp_path) / "out"), f"--instance_model={other}"]
    config = RunConfig.from_options(PipelineOptions(args))
    assert os.path.basename(config.semantic_spec.local_path) == "semantic"
