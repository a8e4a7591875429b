"""segbeam on Beam's DaskRunner against a real dask.distributed cluster.

The module starts a LocalCluster on loopback: a scheduler in this process and
two worker processes (each with a nanny that restarts it if it dies). Every
test runs the whole pipeline there and compares with the DirectRunner, or
checks that a lost worker or lost data never goes unnoticed. The tests that
kill workers come last, so the others run on warm workers.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
import dask
import pytest
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
from distributed import Client, LocalCluster, get_task_stream

from pipeline import graph
from pipeline.ledger import LedgerError
from pipeline.output_dir import SUCCESS_MARKER
from pipeline.run import run
from tests.bad_inputs import Corpus, build_corpus
from tests.reliability.runs import (
    TinyModels,
    build_tiny_models,
    committed_files,
    read_all_tables,
    relative_files,
    segbeam_argv,
)
from transforms import read
from transforms.decode import DecodeImages
from transforms.elements import EncodedBatch, ShardSummary

# A task whose worker died this many times is given up (KilledWorker); one
# death is retried, so a single killed worker costs a retry, not the run.
_ALLOWED_FAILURES = 1


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": _ALLOWED_FAILURES}),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as local_cluster,
    ):
        yield local_cluster


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return build_tiny_models(tmp_path_factory.mktemp("dask_models"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("dask_corpus"))


def _dask_flags(cluster: LocalCluster) -> list[str]:
    return ["--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}"]


def _inputs(corpus: Corpus, *names: str) -> str:
    return ",".join(str(corpus.file(name)) for name in names)


# A few good and bad image files and a shard with a corrupt record: five work units.
_SMALL = ("gray.png", "page.jpg", "palette.png", "rgba.png", "mixed shard ü.tfrecord")


def test_dask_gives_the_same_tables_as_the_direct_runner(tmp_path, cluster, corpus, models):
    inputs = f"{corpus.directory}/*"
    direct = run(segbeam_argv(inputs, tmp_path / "direct", models))
    with Client(cluster) as observer, get_task_stream(client=observer) as tasks:
        on_dask = run(segbeam_argv(inputs, tmp_path / "dask", models, *_dask_flags(cluster)))

    assert on_dask.runner == "DaskRunner"
    manifest = json.loads((tmp_path / "dask" / "manifest.json").read_text())
    # 17 image files, 8 per work unit (3 units), and 2 shards: one Dask partition each.
    assert manifest["beam_options"]["npartitions"] == 5
    assert manifest["metrics"] is None  # Beam's DaskRunner implements no metrics().
    assert relative_files(tmp_path / "dask") == committed_files(tmp_path / "dask")
    assert read_all_tables(tmp_path / "dask") == read_all_tables(tmp_path / "direct")
    assert on_dask.ledger == direct.ledger
    # One partition per work unit, so both workers did part of the work.
    assert len({task["worker"] for task in tasks.data}) == 2


class _SummariesAtFinishBundle(beam.DoFn):
    """Holds shard summaries back and emits them from finish_bundle, as a naive reader might.

    Beam's DirectRunner delivers finish_bundle outputs; Beam 2.77's DaskRunner drops them.
    """

    def start_bundle(self) -> None:
        self._held: list[ShardSummary] = []

    def process(self, item: EncodedBatch | ShardSummary) -> Iterator[EncodedBatch]:
        if isinstance(item, ShardSummary):
            self._held.append(item)
        else:
            yield item

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for summary in self._held:
            yield WindowedValue(summary, MIN_TIMESTAMP, [GlobalWindow()])


class _ReadShardsWithLateSummaries(beam.PTransform):
    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self._batch_size = batch_size

    def expand(self, units: beam.PCollection) -> dict[str, beam.PCollection]:
        mixed = (
            units
            | "Read" >> beam.ParDo(read._ReadWorkUnitFn(self._batch_size))
            | "HoldSummaries" >> beam.ParDo(_SummariesAtFinishBundle())
        )
        return {
            "batches": mixed | "KeepBatches" >> beam.Filter(read._is_batch),
            "summaries": mixed | "KeepSummaries" >> beam.Filter(read._is_summary),
        }


def test_data_the_runner_drops_fails_the_ledger_check(
    tmp_path, cluster, corpus, models, monkeypatch
):
    monkeypatch.setattr(graph, "ReadShards", _ReadShardsWithLateSummaries)
    inputs = _inputs(corpus, *_SMALL)
    run(segbeam_argv(inputs, tmp_path / "direct", models))  # Nothing lost here.
    output = tmp_path / "dask"

    with pytest.raises(LedgerError, match="5 input files have no read summary"):
        run(segbeam_argv(inputs, output, models, *_dask_flags(cluster)))

    assert not (output / SUCCESS_MARKER).exists()


class _KillWorkerFn(beam.DoFn):
    """Passes batches through; SIGKILLs its own worker process on a batch from `victim`.

    With `once`, only the first time (a marker file remembers it), as when a
    machine is lost once; otherwise every time, as with a record that always
    exhausts a worker's memory.
    """

    def __init__(self, victim: str, marker: str, once: bool) -> None:
        self._victim = victim
        self._marker = marker
        self._once = once

    def process(self, batch: EncodedBatch) -> Iterator[EncodedBatch]:
        hit = any(record.ref.source == self._victim for record in batch)
        if hit and not (self._once and os.path.exists(self._marker)):
            Path(self._marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        yield batch


def _decode_after_killer(victim: str, marker: Path, once: bool) -> type[beam.PTransform]:
    class KillThenDecode(beam.PTransform):
        def __init__(self, max_image_pixels: int) -> None:
            super().__init__()
            self._max_image_pixels = max_image_pixels

        def expand(self, batches: beam.PCollection) -> beam.PCollection:
            return (
                batches
                | "KillWorker" >> beam.ParDo(_KillWorkerFn(victim, str(marker), once))
                | "Decode" >> DecodeImages(self._max_image_pixels)
            )

    return KillThenDecode


def test_worker_killed_once_mid_run_still_gives_the_right_tables(
    tmp_path, cluster, corpus, models, monkeypatch
):
    inputs = _inputs(corpus, *_SMALL)
    run(segbeam_argv(inputs, tmp_path / "direct", models))
    marker = tmp_path / "killed"
    victim = str(corpus.file("palette.png"))
    monkeypatch.setattr(graph, "DecodeImages", _decode_after_killer(victim, marker, once=True))

    run(segbeam_argv(inputs, tmp_path / "dask", models, *_dask_flags(cluster)))

    assert marker.exists(), "no worker was killed"
    assert read_all_tables(tmp_path / "dask") == read_all_tables(tmp_path / "direct")


def test_worker_killed_every_time_fails_the_run_with_a_clear_message(
    tmp_path, cluster, corpus, models, monkeypatch
):
    marker = tmp_path / "killed"
    victim = str(corpus.file("palette.png"))
    monkeypatch.setattr(graph, "DecodeImages", _decode_after_killer(victim, marker, once=False))
    output = tmp_path / "dask"

    with pytest.raises(RuntimeError, match=r"The Dask cluster lost this run \(KilledWorker") as e:
        run(segbeam_argv(_inputs(corpus, *_SMALL), output, models, *_dask_flags(cluster)))

    assert "No _SUCCESS was written" in str(e.value)
    assert not (output / SUCCESS_MARKER).exists()
