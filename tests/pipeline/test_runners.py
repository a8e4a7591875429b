"""Tests for pipeline/runners.py: which runner each --runner gets, and what it is set up with."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.dask.dask_runner import DaskOptions
from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner
from apache_beam.runners.runner import PipelineState
from apache_beam.testing.util import assert_that, equal_to
from distributed import LocalCluster

from pipeline.runners import (
    MAX_DEFAULT_DASK_PARTITIONS,
    SegbeamDaskRunner,
    default_dask_partitions,
    resolve_runner,
    runner_name,
    runs_in_process,
    with_direct_parallelism,
)


@pytest.mark.parametrize("flags", [[], ["--runner=DirectRunner"], ["--runner=direct"]])
def test_direct_runner_names_run_on_the_fn_api_runner(flags):
    runner = resolve_runner(PipelineOptions(flags))

    assert isinstance(runner, FnApiRunner)
    assert runner_name(runner) == "FnApiRunner"


@pytest.mark.parametrize("name", ["DaskRunner", "dask"])
def test_dask_runner_names_get_the_segbeam_dask_runner(name):
    runner = resolve_runner(PipelineOptions([f"--runner={name}"]))

    assert isinstance(runner, SegbeamDaskRunner)
    assert runner_name(runner) == "DaskRunner"


def test_other_runner_names_go_to_beam_unchanged():
    assert resolve_runner(PipelineOptions(["--runner=DataflowRunner"])) == "DataflowRunner"
    assert runner_name("DataflowRunner") == "DataflowRunner"


def _bag_kwargs(options: PipelineOptions) -> dict[str, int]:
    # What Beam's DaskRunner.run_pipeline derives from the options for its Create.
    dask_options = options.view_as(DaskOptions).get_all_options(
        drop_default=True, current_only=True
    )
    return DaskOptions._extract_bag_kwargs(dask_options)


@pytest.mark.parametrize(
    ("num_work_units", "expected"),
    [(1, 1), (5, 5), (MAX_DEFAULT_DASK_PARTITIONS, 128), (10_000, 128), (0, 1)],
)
def test_dask_gets_one_partition_per_work_unit_up_to_a_cap(num_work_units, expected):
    options = PipelineOptions(["--runner=DaskRunner"])

    resolve_runner(options, num_work_units)

    assert _bag_kwargs(options) == {"npartitions": expected}


def test_dask_partitions_chosen_by_the_user_are_kept():
    by_count = PipelineOptions(["--dask_npartitions=3"])
    by_size = PipelineOptions(["--dask_partition_size=2"])

    assert default_dask_partitions(by_count, 50) == 3
    assert default_dask_partitions(by_size, 50) is None
    assert _bag_kwargs(by_count) == {"npartitions": 3}
    assert _bag_kwargs(by_size) == {"partition_size": 2}


def test_in_process_dask_cluster_is_refused():
    options = PipelineOptions(
        ["--runner=DaskRunner", "--dask_client_address=inproc://10.0.0.1/1/1"]
    )

    with pytest.raises(ValueError, match=r"in-process Dask cluster.*tcp://"):
        resolve_runner(options, 4)


def test_direct_runner_leaves_dask_options_alone():
    options = PipelineOptions([])

    resolve_runner(options, 7)

    assert options.view_as(DaskOptions).npartitions is None


class _RecordCalls(beam.DoFn):
    """Passes elements through; leaves one file per setup() and per process() call."""

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def setup(self) -> None:
        Path(self._directory, "setup").mkdir(exist_ok=True)
        Path(self._directory, "setup", str(id(self))).touch()

    def process(self, element: int):
        with Path(self._directory, "process").open("a") as calls:
            calls.write(f"{element}\n")
        yield element


def test_fn_api_runner_honours_bundle_repeat(tmp_path):
    options = PipelineOptions(["--direct_runner_bundle_repeat=2"])
    pipeline = beam.Pipeline(runner=resolve_runner(options), options=options)
    squares = (
        pipeline
        | beam.Create([1, 2, 3])
        | beam.ParDo(_RecordCalls(str(tmp_path)))
        | beam.Map(lambda x: x * x)
    )
    assert_that(squares, equal_to([1, 4, 9]))

    pipeline.run().wait_until_finish()

    # The bundle ran once more than normal; its repeated outputs were discarded.
    calls = sorted((tmp_path / "process").read_text().split())
    assert calls == ["1", "1", "1", "2", "2", "2", "3", "3", "3"]


def test_dask_runner_spreads_work_units_and_closes_its_client(tmp_path):
    # Worker threads in this process, but talking tcp, so every task is serialised
    # as on a real cluster (tests/test_dask.py runs worker processes).
    with LocalCluster(
        n_workers=1,
        processes=False,
        threads_per_worker=2,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as cluster:
        options = PipelineOptions(
            ["--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}"]
        )
        pipeline = beam.Pipeline(runner=resolve_runner(options, 4), options=options)
        squares = (
            pipeline
            | beam.Create([1, 2, 3, 4])
            | beam.ParDo(_RecordCalls(str(tmp_path)))
            | beam.Map(lambda x: x * x)
        )
        assert_that(squares, equal_to([1, 4, 9, 16]))

        result = pipeline.run()
        state = result.wait_until_finish()

        assert state == PipelineState.DONE
        assert result.client.status == "closed"
    # Beam's DaskRunner sets a DoFn up once per partition: four partitions, not one.
    assert len(list((tmp_path / "setup").iterdir())) == 4


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], True),
        (["--runner=DirectRunner", "--direct_running_mode=multi_threading"], True),
        (["--direct_num_workers=2", "--direct_running_mode=multi_processing"], False),
        (["--runner=DaskRunner", "--dask_client_address=tcp://127.0.0.1:1"], False),
        (["--runner=DataflowRunner"], False),
    ],
)
def test_runs_in_process(args: list[str], expected: bool) -> None:
    assert runs_in_process(PipelineOptions(args)) is expected


@pytest.mark.parametrize(
    ("argv", "cores", "added"),
    [
        ([], 2, ["--direct_running_mode=multi_threading", "--direct_num_workers=2"]),
        (
            ["--runner=DirectRunner"],
            4,
            ["--direct_running_mode=multi_threading", "--direct_num_workers=4"],
        ),
        ([], 64, ["--direct_running_mode=multi_threading", "--direct_num_workers=4"]),
        ([], 1, []),
        (["--direct_num_workers=1"], 2, []),
        (["--direct_running_mode=in_memory"], 2, []),
        (["--runner=DaskRunner"], 2, []),
    ],
)
def test_with_direct_parallelism(argv: list[str], cores: int, added: list[str]) -> None:
    assert with_direct_parallelism(["--output", "x", *argv], cpu_count=cores) == [
        "--output",
        "x",
        *argv,
        *added,
    ]
