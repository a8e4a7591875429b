"""docs/cookbook.md: every recipe runs on a hand-made run and gives the hand-computed answer.

Recipes are the fenced blocks after a `<!-- cookbook:KIND NAME -->` marker:
`sql` blocks run in DuckDB (after the `views` block), `python` blocks run as
they are, `pandas` blocks run after the pandas `views` block and leave their
answer in `result`. A recipe without an expectation here, or an expectation
without a recipe, fails the test, so the docs and the checks can't drift apart.

The run (tests/pipeline/fake_run.py): images A 40x30, B 20x20, C 10x10;
pixels sky 400, building 340, road 710, vegetation 100, vehicle 60,
pedestrian 90 (of 1700); instances: A pedestrians 50 px and 40 px,
B vehicle 60 px and pedestrian 18 px (not in B's semantic mask).
"""

import datetime
import re
from pathlib import Path

import duckdb
import pytest

from tests.pipeline import fake_run

COOKBOOK = Path(__file__).resolve().parents[2] / "docs" / "cookbook.md"
_RECIPE = re.compile(r"<!-- cookbook:(sql|python|pandas) (\w+) -->\s*```\w*\n(.*?)```", re.S)


def _recipes(kind):
    found = {}
    for recipe_kind, name, body in _RECIPE.findall(COOKBOOK.read_text()):
        if recipe_kind == kind:
            assert name not in found, f"two {kind} recipes named {name!r}"
            found[name] = body
    return found


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A directory holding run/ and runs/run_date=.../ (the third run failed: no _SUCCESS)."""
    root = tmp_path_factory.mktemp("cookbook")
    inputs = fake_run.write_inputs(root)
    fake_run.write_run(root / "run", inputs)
    fake_run.write_run(root / "runs" / "run_date=2025-06-01", inputs)
    fake_run.write_run(root / "runs" / "run_date=2025-06-02", inputs, keys=("C",))
    fake_run.write_run(root / "runs" / "run_date=2025-06-03", inputs, keys=("B",), success=False)
    return root, inputs


def _ids(inputs):
    return {key: image.image_id for key, image in inputs.images.items()}


def _sql_expectations(inputs):
    ids = _ids(inputs)
    a, b = inputs.images["A"], inputs.images["B"]
    return {
        "views": [],
        "pixel_share": [
            (0, "sky", 400, 400 / 1700),
            (1, "building", 340, 340 / 1700),
            (2, "road", 710, 710 / 1700),
            (4, "vegetation", 100, 100 / 1700),
            (5, "vehicle", 60, 60 / 1700),
            (6, "pedestrian", 90, 90 / 1700),
        ],
        "min_pedestrians": [(ids["A"], a.source, 0, 2)],
        "mean_area": [
            (5, "vehicle", 1, 60.0, 60 / 400),
            (6, "pedestrian", 3, (50 + 40 + 18) / 3, (50 / 1200 + 40 / 1200 + 18 / 400) / 3),
        ],
        "disagreements": [(ids["B"], f"{ids['B']}-1", "pedestrian", 0.64, 18)],
        "disagreements_by_class": [(ids["B"], 6, "pedestrian", 1)],
        "errors": [
            ("decode", "TruncatedImage", 1, inputs.errors[1]["source"]),
            ("read", "CorruptRecord", 1, a.source),
        ],
        "nightly": [
            (datetime.date(2025, 6, 1), 3, 4),
            (datetime.date(2025, 6, 2), 1, 0),
            (datetime.date(2025, 6, 3), 1, len(b.instances)),  # Unfinished, still counted.
        ],
        "nightly_finished": [
            ("runs/run_date=2025-06-01", 3, 4),
            ("runs/run_date=2025-06-02", 1, 0),
        ],
    }


def _assert_rows(actual, expected, name):
    assert len(actual) == len(expected), (name, actual)
    for got, want in zip(actual, expected, strict=True):
        assert len(got) == len(want), (name, got)
        for g, w in zip(got, want, strict=True):
            if isinstance(w, float):
                assert g == pytest.approx(w, abs=1e-6), (name, got, want)
            else:
                assert g == w, (name, got, want)


def test_every_sql_recipe_gives_the_hand_computed_answer(workspace, monkeypatch):
    root, inputs = workspace
    monkeypatch.chdir(root)
    recipes = _recipes("sql")
    expectations = _sql_expectations(inputs)
    assert set(recipes) == set(expectations)
    connection = duckdb.connect()
    connection.execute(recipes["views"])
    for name, sql in recipes.items():
        if name == "views":
            continue
        rows = connection.execute(sql).fetchall()
        _assert_rows(rows, expectations[name], name)


def test_python_recipes_run(workspace, monkeypatch):
    root, _ = workspace
    monkeypatch.chdir(root)
    recipes = _recipes("python")
    assert set(recipes) == {"decode_mask"}
    namespace = {}
    exec(recipes["decode_mask"], namespace)
    # Road is only in A (40x30): everything below row 10 except 90 pedestrian pixels.
    assert namespace["mask"].shape == (30, 40)
    assert namespace["mask"].sum() == 710
    assert namespace["mask"][:10].sum() == 0


def test_pandas_recipes_match_the_sql_answers(workspace, monkeypatch):
    pytest.importorskip(
        "pandas", reason="pandas is not installed; add it to the test extra to run these"
    )
    root, inputs = workspace
    monkeypatch.chdir(root)
    recipes = _recipes("pandas")
    expectations = _sql_expectations(inputs)
    assert set(recipes) - {"views"} <= set(expectations)
    namespace = {}
    exec(recipes["views"], namespace)
    for name, code in recipes.items():
        if name == "views":
            continue
        exec(code, namespace)
        rows = list(namespace["result"].itertuples(index=False, name=None))
        _assert_rows(rows, expectations[name], name)
