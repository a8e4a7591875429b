"""Earlier runs' hashes: only completed runs count, and never the current output."""

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import schemas
from pipeline.previous_runs import completed_runs, known_image_hashes


def _run(root, name, hashes, success=True):
    run = root / name
    (run / "images").mkdir(parents=True)
    rows = [
        {
            "image_id": h,
            "source": "s",
            "record_index": 0,
            "width": 1,
            "height": 1,
            "num_instances": 0,
            "filename": "",
            "source_id": "",
            "content_sha256": h,
        }
        for h in hashes
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=schemas.IMAGES), run / "images" / "p.parquet")
    if success:
        (run / "_SUCCESS").write_bytes(b"")
    return run


def test_only_completed_runs_and_never_the_output_itself(tmp_path):
    _run(tmp_path, "2026-11-24", ["a", "b"])
    _run(tmp_path, "2026-11-25", ["c"], success=False)  # Killed: not trusted.
    today = _run(tmp_path, "2026-11-26", ["d"])
    pattern = str(tmp_path / "*")
    assert [r.rsplit("/", 1)[-1] for r in completed_runs([pattern])] == ["2026-11-24", "2026-11-26"]
    assert known_image_hashes([pattern], exclude=str(today)) == frozenset({"a", "b"})


def test_a_pattern_without_runs_gives_nothing(tmp_path):
    assert known_image_hashes([str(tmp_path / "nothing-*")]) == frozenset()
