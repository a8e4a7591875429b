"""Reruns, repeated bundles and killed runs: the tables come out the same, never half-committed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.output_dir import STAGING, SUCCESS_MARKER
from pipeline.run import run
from tests.reliability.runs import (
    committed_files,
    read_all_tables,
    relative_files,
    segbeam_argv,
    snapshot,
    start_segbeam,
)
from transforms.spill import SPILL_DIR_NAME

_INTERRUPTED_RUN = Path(__file__).with_name("interrupted_run.py")
_STARTUP_TIMEOUT_SECONDS = 180


def _inputs(corpus, *names: str) -> str:
    return ",".join(str(corpus.file(name)) for name in names)


def test_repeated_bundles_give_identical_tables_and_files(tmp_path, corpus, tiny_models):
    inputs = f"{corpus.directory}/*"
    run(segbeam_argv(inputs, tmp_path / "once", tiny_models))
    run(segbeam_argv(inputs, tmp_path / "twice", tiny_models, "--direct_runner_bundle_repeat=2"))

    assert relative_files(tmp_path / "twice") == relative_files(tmp_path / "once")
    assert read_all_tables(tmp_path / "twice") == read_all_tables(tmp_path / "once")


def _wait_for(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
    while not path.exists():
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            pytest.fail(f"the run ended (exit {process.returncode}) before it stopped:\n{output}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"the run did not reach its stopping point in {_STARTUP_TIMEOUT_SECONDS} s")
        time.sleep(0.1)


def _kill(process: subprocess.Popen[bytes]) -> None:
    assert process.poll() is None, "the run finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("stage", ["read", "write"])
def test_killed_run_then_rerun_ends_complete_and_consistent(tmp_path, corpus, tiny_models, stage):
    output = tmp_path / "out"
    first = _inputs(corpus, "gray.png", "page.jpg")
    second = _inputs(corpus, "palette.png", "zero bytes.jpg", "mixed shard ü.tfrecord")
    run(segbeam_argv(first, output, tiny_models))
    marker = tmp_path / "stopped"

    process = start_segbeam(
        [stage, str(marker), *segbeam_argv(second, output, tiny_models)], _INTERRUPTED_RUN
    )
    _wait_for(marker, process)
    assert not (output / SUCCESS_MARKER).exists()
    _kill(process)

    assert not (output / SUCCESS_MARKER).exists()
    staged = list((output / STAGING).rglob("*.parquet"))
    assert bool(staged) == (stage == "write")  # Killed in the middle of writing, or before.
    # Spilled mask rows exist only in the staging area, never beside the committed tables.
    spilled = list(output.rglob("*.arrow"))
    assert all({STAGING, SPILL_DIR_NAME} <= set(p.relative_to(output).parts) for p in spilled)
    if stage == "write":
        assert spilled  # All inference (and so all spilling) is done before the write starts.

    run(segbeam_argv(second, output, tiny_models))
    run(segbeam_argv(second, tmp_path / "fresh", tiny_models))
    assert relative_files(output) == committed_files(output)
    assert read_all_tables(output) == read_all_tables(tmp_path / "fresh")


def test_concurrent_runs_into_different_outputs_do_not_touch_each_other(
    tmp_path, corpus, tiny_models
):
    # "out" and "out-2" share a name prefix, the way careless globbing would confuse them.
    done = tmp_path / "done"
    run(segbeam_argv(_inputs(corpus, "rgba.png"), done, tiny_models))
    before = snapshot(done)
    inputs = {
        tmp_path / "out": _inputs(corpus, "gray.png", "page.jpg"),
        tmp_path / "out-2": _inputs(corpus, "palette.png", "truncated.tfrecord"),
    }

    processes = [start_segbeam(segbeam_argv(i, o, tiny_models)) for o, i in inputs.items()]
    for process in processes:
        output, _ = process.communicate(timeout=_STARTUP_TIMEOUT_SECONDS)
        assert process.returncode == 0, output.decode(errors="replace")

    assert snapshot(done) == before
    for output, sources in inputs.items():
        assert relative_files(output) == committed_files(output)
        tables = read_all_tables(output)
        assert sorted(r["source"] for r in tables["shards"]) == sorted(sources.split(","))
        fresh = tmp_path / f"fresh-{output.name}"
        run(segbeam_argv(sources, fresh, tiny_models))
        assert tables == read_all_tables(fresh)
