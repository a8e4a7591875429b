"""Tests for pipeline/options.py: TensorFlow thread settings per worker process."""

from __future__ import annotations

import os

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

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
