"""Earlier runs' hashes: only completed runs count, and never the current output."""

from pipeline.previous_runs import completed_runs, known_image_hashes
from tests.pipeline.table_rows import image_row, write_part


def _run(root, name, hashes, success=True):
    run = root / name
    write_part(run, "images", [image_row(h, content_sha256=h) for h in hashes], name="p.parquet")
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
