"""The report in real headless Chromium: a screenshot must show the charts and the overlays.

Chromium renders report.html from disk (no network flags), and the test reads
the screenshot's pixels: the bar charts must appear as solid bars of the exact
class colours with lengths in the ratio of the hand-counted values, the
histograms as bars of their colours with heights in the ratio of the counts,
and the overlays as large areas of the hand-computed blend colours.

Needs Debian's `chromium` package (`apt-get install -y chromium`); skipped
with that reason where it is not installed.
"""

import collections
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from pipeline.report import write_report
from tests.pipeline import fake_run

CLASS_COLOURS = {
    "sky": (70, 130, 180),
    "building": (70, 70, 70),
    "road": (128, 64, 128),
    "vegetation": (107, 142, 35),
    "vehicle": (0, 0, 142),
    "pedestrian": (220, 20, 60),
}
INSTANCES_HISTOGRAM = (76, 114, 176)
SCORES_HISTOGRAM = (221, 132, 82)
WINDOW = (1200, 4000)

_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    _CHROMIUM is None,
    reason="headless Chromium is not installed: apt-get install -y chromium",
)

Rect = collections.namedtuple("Rect", "left top width height")


def _screenshot(html_path, tmp_path):
    shot = tmp_path / "shot.png"
    command = [
        _CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--force-color-profile=srgb",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        html_path.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert shot.exists(), f"chromium wrote no screenshot: {done.stderr[-2000:]}"
    return np.asarray(Image.open(shot).convert("RGB"))


def _rects(pixels, colour, min_height=1):
    """Solid rectangles of exactly `colour`: runs of rows with the same horizontal extent."""
    mask = np.all(pixels == np.asarray(colour, dtype=np.uint8), axis=-1)
    rows_with_colour = set(np.flatnonzero(mask.any(axis=1)).tolist())
    open_runs = {}  # (left, right) -> top row
    found = []
    # Only rows holding the colour (and the row after each) can open or close a run.
    for y in sorted(rows_with_colour | {y + 1 for y in rows_with_colour}):
        row_runs = set()
        if y in rows_with_colour:
            padded = np.concatenate(([False], mask[y], [False])).astype(np.int8)
            edges = np.flatnonzero(np.diff(padded))
            row_runs = set(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
        for run in list(open_runs):
            if run not in row_runs:
                top = open_runs.pop(run)
                if y - top >= min_height:
                    found.append(Rect(run[0], top, run[1] - run[0], y - top))
        for run in row_runs:
            open_runs.setdefault(run, y)
    return found


def _horizontal_bar_charts(pixels, colours):
    """Groups horizontal bars (height >= 10) by their common left edge: one dict per chart."""
    charts = collections.defaultdict(dict)
    for name, colour in colours.items():
        for rect in _rects(pixels, colour, min_height=10):
            if rect.width > rect.height:  # A bar, not a legend swatch or an outline.
                charts[rect.left][name] = rect.width
    return list(charts.values())


def _assert_proportional(lengths, values, tolerance_px=1.5):
    longest = max(values, key=values.get)
    for name, value in values.items():
        expected = lengths[longest] * value / values[longest]
        assert abs(lengths[name] - expected) <= tolerance_px, (name, lengths, values)


@pytest.fixture(scope="module")
def screenshot(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    run_dir = fake_run.write_run(root / "run", fake_run.write_inputs(root))
    write_report(str(run_dir))
    return _screenshot(run_dir / "report.html", root)


def test_pixel_share_chart_renders_with_proportional_class_bars(screenshot):
    pixel_counts = {
        "sky": 400,
        "building": 340,
        "road": 710,
        "vegetation": 100,
        "vehicle": 60,
        "pedestrian": 90,
    }
    found = _horizontal_bar_charts(screenshot, CLASS_COLOURS)
    charts = [c for c in found if set(c) == set(pixel_counts)]
    assert len(charts) == 1, found
    assert charts[0]["road"] >= 100  # Long enough to read.
    _assert_proportional(charts[0], pixel_counts)


def test_instance_count_chart_renders(screenshot):
    counts = {"vehicle": 1, "pedestrian": 3}
    found = _horizontal_bar_charts(screenshot, CLASS_COLOURS)
    charts = [c for c in found if set(c) == set(counts)]
    assert len(charts) == 1, found
    _assert_proportional(charts[0], counts)


def _vertical_bars(pixels, colour):
    bars = [r for r in _rects(pixels, colour, min_height=5) if r.width >= 5]
    return sorted(bars, key=lambda r: r.left)


def test_histograms_render(screenshot):
    # Images by instance count: 0 -> 1 image (C), 2 -> 2 images (A, B).
    per_image = _vertical_bars(screenshot, INSTANCES_HISTOGRAM)
    assert len(per_image) == 2
    assert per_image[1].height == pytest.approx(2 * per_image[0].height, abs=1.5)
    assert per_image[0].top + per_image[0].height == per_image[1].top + per_image[1].height
    # Scores 0.64 | 0.82 | 0.93, 0.97: bins 0.6, 0.8, 0.9 with 1, 1, 2.
    scores = _vertical_bars(screenshot, SCORES_HISTOGRAM)
    assert [round(b.height / scores[0].height) for b in scores] == [1, 1, 2]
    assert scores[1].left - scores[0].left == pytest.approx(2 * (scores[2].left - scores[1].left))


def test_overlays_render_their_pixels(screenshot):
    # Each overlay's dominant class, blended 50/50 with the image colour drawn there.
    blends = {
        "A road": ((90 + 128) // 2, (90 + 64) // 2, (90 + 128) // 2),
        "A sky": ((200 + 70) // 2, (220 + 130) // 2, (250 + 180) // 2),
        "B building": ((150 + 70) // 2, (120 + 70) // 2, (100 + 70) // 2),
        "C vegetation": ((41 + 107) // 2, (160 + 142) // 2, (41 + 35) // 2),
    }
    for name, colour in blends.items():
        count = int(np.all(screenshot == np.asarray(colour, dtype=np.uint8), axis=-1).sum())
        # Each area covers at least a quarter of a ~400 px wide picture.
        assert count > 20_000, (name, colour, count)


def test_legend_swatches_render(screenshot):
    for name, colour in CLASS_COLOURS.items():
        swatches = [r for r in _rects(screenshot, colour) if 12 <= r.width == r.height <= 16]
        assert swatches, f"no legend swatch for {name}"
