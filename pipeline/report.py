"""`python run_pipeline.py report --output DIR`: a self-contained HTML report of a run.

Writes, into the run directory:

    DIR/report.html                         one file: CSS, SVG charts and PNG overlays inline
    DIR/report/overlays/<image_id>.png      the gallery's overlays, also as files

Both are written atomically; overlays of images no longer in the gallery are
removed, so the folder always matches the page. The report only reads the run's
tables and manifest (and the original inputs, for the overlays' backgrounds).
"""

from __future__ import annotations

import dataclasses

from pipeline.report_data import (
    DEFAULT_GALLERY_SIZE,
    ImagePredictions,
    ReportData,
    load_predictions,
    load_report_data,
)
from pipeline.report_html import GalleryOverlay, render_report_html
from pipeline.report_overlays import display_size, encode_png, render_overlay
from pipeline.report_sources import load_originals
from transforms.atomic_files import delete_files, join, list_files, write_bytes_atomically

REPORT_HTML = "report.html"
OVERLAYS_DIR = ("report", "overlays")


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    """What `write_report` wrote."""

    html_path: str
    overlay_paths: tuple[str, ...]  # One per gallery image, in gallery order.
    missing_originals: int  # Gallery images drawn without their original pixels.


def write_report(output_dir: str, gallery_size: int = DEFAULT_GALLERY_SIZE) -> ReportFiles:
    """Writes `output_dir`/report.html and the gallery's overlay PNGs.

    Args:
      output_dir: A run directory, local or any FileSystems URL.
      gallery_size: How many images the gallery shows (the first by image_id).

    Raises:
      FileNotFoundError: if `output_dir` holds no segbeam run.
    """
    data = load_report_data(output_dir, gallery_size)
    gallery = render_gallery(data)
    overlay_paths = _write_overlays(output_dir, gallery)
    html_path = join(output_dir, REPORT_HTML)
    write_bytes_atomically(html_path, render_report_html(data, gallery).encode("utf-8"))
    return ReportFiles(
        html_path=html_path,
        overlay_paths=overlay_paths,
        missing_originals=sum(1 for entry in gallery if entry.note),
    )


def render_gallery(data: ReportData) -> tuple[GalleryOverlay, ...]:
    """Draws the overlay of every gallery image of `data`, in gallery order."""
    predictions = load_predictions(data.output_dir, [image.image_id for image in data.gallery])
    originals = load_originals(data.gallery)
    names = {c.class_id: c.class_name for c in data.classes}
    entries = []
    for image in data.gallery:
        original = originals[image.image_id]
        found: ImagePredictions = predictions[image.image_id]
        pixels = render_overlay(
            original if not isinstance(original, str) else None,
            image.width,
            image.height,
            found.semantic,
            found.instances,
            names,
        )
        width, height = display_size(image.width, image.height)
        note = f"Original image unavailable: {original}" if isinstance(original, str) else ""
        entries.append(GalleryOverlay(image, encode_png(pixels), width, height, note))
    return tuple(entries)


def _write_overlays(output_dir: str, gallery: tuple[GalleryOverlay, ...]) -> tuple[str, ...]:
    directory = join(output_dir, *OVERLAYS_DIR)
    paths = []
    for entry in gallery:
        path = join(directory, f"{entry.image.image_id}.png")
        write_bytes_atomically(path, entry.png)
        paths.append(path)
    stale = [p for p in list_files(directory) if p not in set(paths)]
    delete_files(stale)
    return tuple(paths)
