"""--max_error_fraction: too many bad inputs fail the run, after the errors table is written."""

from __future__ import annotations

import json

import pytest

import run_pipeline
from pipeline.output_dir import STAGING, SUCCESS_MARKER
from pipeline.run import ErrorBudgetError, run
from tests.reliability.runs import read_all_tables, segbeam_argv

# Two good images and two bad ones: an error fraction of exactly 0.5.
_CASES = ("gray.png", "palette.png", "page.jpg", "zero bytes.jpg")


@pytest.fixture
def half_bad(corpus) -> str:
    return ",".join(str(corpus.file(name)) for name in _CASES)


def test_no_limit_by_default(tmp_path, half_bad, tiny_models):
    outcome = run(segbeam_argv(half_bad, tmp_path / "out", tiny_models))

    assert outcome.ledger.errors == 2
    assert (tmp_path / "out" / SUCCESS_MARKER).exists()


def test_fraction_equal_to_the_limit_passes(tmp_path, half_bad, tiny_models):
    run(segbeam_argv(half_bad, tmp_path / "out", tiny_models, "--max_error_fraction=0.5"))

    assert (tmp_path / "out" / SUCCESS_MARKER).exists()


def test_fraction_over_the_limit_fails_after_writing_the_errors_table(
    tmp_path, corpus, half_bad, tiny_models
):
    output = tmp_path / "out"

    with pytest.raises(ErrorBudgetError) as raised:
        run(segbeam_argv(half_bad, output, tiny_models, "--max_error_fraction=0.49"))

    message = str(raised.value)
    assert "2 of 4 records (50.0%) failed (1 x EmptyImage, 1 x UnsupportedFormat)" in message
    assert "--max_error_fraction=0.49" in message
    assert not (output / SUCCESS_MARKER).exists()
    # The run's complete tables are published, errors included, with a failed manifest.
    assert str(output / "errors") in message
    assert not (output / STAGING).exists()
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["failure"].startswith("2 of 4 records (50.0%) failed")
    tables = read_all_tables(output)
    assert sorted((r["source"], r["error_type"]) for r in tables["errors"]) == [
        (corpus.case("page.jpg").source, "UnsupportedFormat"),
        (corpus.case("zero bytes.jpg").source, "EmptyImage"),
    ]
    assert len(tables["images"]) == 2


def test_zero_fails_on_any_error_and_passes_a_clean_run(tmp_path, corpus, half_bad, tiny_models):
    clean = str(corpus.case("gray.png").path)
    run(segbeam_argv(clean, tmp_path / "clean", tiny_models, "--max_error_fraction=0"))
    assert (tmp_path / "clean" / SUCCESS_MARKER).exists()

    with pytest.raises(ErrorBudgetError):
        run(segbeam_argv(half_bad, tmp_path / "bad", tiny_models, "--max_error_fraction=0"))


def test_command_line_reports_the_failure_without_a_traceback(
    tmp_path, half_bad, tiny_models, capsys
):
    argv = segbeam_argv(half_bad, tmp_path / "out", tiny_models, "--max_error_fraction=0.25")

    assert run_pipeline.main(argv) == 1

    err = capsys.readouterr().err
    # The run's log goes to stderr first; the failure is the final line.
    assert err.splitlines()[-1].startswith("segbeam: run failed: 2 of 4 records (50.0%) failed")
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_out_of_range_limit_is_refused_before_any_work(tmp_path, half_bad, tiny_models, value):
    argv = segbeam_argv(half_bad, tmp_path / "out", tiny_models, f"--max_error_fraction={value}")

    with pytest.raises(ValueError, match=r"--max_error_fraction must be in \[0, 1\]"):
        run(argv)
    assert not (tmp_path / "out").exists()
