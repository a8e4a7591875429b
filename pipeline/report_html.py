"""The report's HTML: one self-contained page (inline CSS, inline SVG, data-URI images).

Nothing is fetched when the page opens (no scripts, fonts, stylesheets or
images from elsewhere), so it can be mailed, archived next to the run, or
opened offline. Every value taken from the run is HTML-escaped.
"""

from __future__ import annotations

import base64
import dataclasses
import html
from collections.abc import Sequence

from pipeline.report_charts import Bar, histogram_chart, horizontal_bar_chart
from pipeline.report_data import ClassStats, ErrorKind, GalleryImage, ReportData
from pipeline.report_manifest_html import (
    evaluation_section,
    ledger_section,
    run_section,
    versions_section,
)
from pipeline.report_palette import (
    HISTOGRAM_INSTANCES,
    HISTOGRAM_SCORES,
    class_colour,
    hex_colour,
)

_MAX_MESSAGE_CHARS = 300

_CSS = """
body { font: 14px/1.45 Helvetica, Arial, sans-serif; color: #222; margin: 0; background: #f4f5f7; }
main { max-width: 1160px; margin: 0 auto; padding: 16px 20px 40px; }
h1 { font-size: 24px; margin: 8px 0 2px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ccd; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 0 0 6px; }
.sub { color: #666; margin: 0 0 12px; word-break: break-all; }
.note { background: #fff4ce; border: 1px solid #e0c060; padding: 8px 12px; margin: 8px 0; }
.ok { color: #1a7f37; font-weight: bold; }
.bad { color: #b42318; font-weight: bold; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #fff; border: 1px solid #dde; border-radius: 6px; padding: 10px 14px; }
.figure { background: #fff; border: 1px solid #dde; border-radius: 6px; padding: 10px; }
.stat { font-size: 22px; font-weight: bold; }
.label { color: #666; font-size: 12px; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #dde; padding: 4px 8px; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.message { max-width: 640px; word-break: break-word; font-size: 12px; }
.swatch { display: inline-block; width: 14px; height: 14px; vertical-align: -2px;
  margin-right: 4px; border: 1px solid #0003; }
.legend span.item { margin-right: 14px; white-space: nowrap; }
.gallery { display: grid; grid-template-columns: repeat(2, 1fr); gap: 12px; align-items: start; }
.gallery figure { margin: 0; background: #fff; border: 1px solid #dde; border-radius: 6px;
  padding: 6px; }
.gallery img { max-width: 100%; max-height: 440px; width: auto; height: auto; display: block;
  margin: 0 auto; image-rendering: pixelated; }
.gallery figcaption { font-size: 12px; color: #444; margin-top: 4px; word-break: break-all; }
details pre { background: #fff; border: 1px solid #dde; padding: 8px; overflow-x: auto;
  font-size: 12px; }
"""


@dataclasses.dataclass(frozen=True)
class GalleryOverlay:
    """One gallery entry: the image's row, its overlay PNG, and any caveat."""

    image: GalleryImage
    png: bytes  # The overlay, display_size(image.width, image.height) pixels.
    display_width: int
    display_height: int
    note: str  # Why the original image is missing from the overlay; "" when it is there.


def render_report_html(data: ReportData, gallery: Sequence[GalleryOverlay]) -> str:
    """The whole report page for one run."""
    sections = [
        _header(data),
        run_section(data),
        ledger_section(data.manifest),
        evaluation_section(data.manifest),
        _classes_section(data.classes),
        _distributions_section(data),
        _errors_section(data.errors),
        _gallery_section(data.classes, gallery),
        versions_section(data.manifest),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>segbeam report: {_e(data.output_dir)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(sections)}</main></body></html>\n"
    )


def _e(value: object) -> str:
    return html.escape(str(value))


def _header(data: ReportData) -> str:
    status = (
        '<span class="ok">succeeded</span>'
        if data.succeeded
        else '<span class="bad">not finished (no _SUCCESS)</span>'
    )
    notes = "".join(f'<div class="note">{_e(note)}</div>' for note in data.notes)
    return (
        f"<h1>segbeam run report</h1>"
        f'<p class="sub">{_e(data.output_dir)} &middot; status: {status}</p>{notes}'
    )


def _classes_section(classes: Sequence[ClassStats]) -> str:
    pixel_bars = [
        Bar(c.class_name, c.pixel_share, f"{100 * c.pixel_share:.1f} %", class_colour(c.class_id))
        for c in classes
    ]
    instance_bars = [
        Bar(c.class_name, c.instance_count, str(c.instance_count), class_colour(c.class_id))
        for c in classes
        if c.instance_count
    ]
    pixel_chart = horizontal_bar_chart(
        "Pixel share per class", pixel_bars, "No semantic pixels in this run."
    )
    instance_chart = horizontal_bar_chart(
        "Instances per class", instance_bars, "No instances in this run."
    )
    rows = "".join(
        f'<tr><td>{c.class_id}</td><td><span class="swatch" style="background:'
        f'{hex_colour(class_colour(c.class_id))}"></span>{_e(c.class_name)}</td>'
        f'<td class="num">{c.pixel_count}</td><td class="num">{100 * c.pixel_share:.2f} %</td>'
        f'<td class="num">{c.instance_count}</td></tr>'
        for c in classes
    )
    table = (
        '<table style="margin-top:12px"><tr><th>id</th><th>class</th><th class="num">pixels</th>'
        f'<th class="num">pixel share</th><th class="num">instances</th></tr>{rows}</table>'
        if classes
        else ""
    )
    return (
        '<h2>Classes</h2><div class="cards">'
        f'<div class="figure"><h3>Pixel share per class (semantic)</h3>{pixel_chart}</div>'
        f'<div class="figure"><h3>Instances per class</h3>{instance_chart}</div></div>{table}'
    )


def _distributions_section(data: ReportData) -> str:
    per_image = histogram_chart(
        "Instances per image",
        data.instances_per_image,
        HISTOGRAM_INSTANCES,
        "instances in the image",
        "No images in this run.",
    )
    scores = histogram_chart(
        "Instance scores",
        data.score_histogram,
        HISTOGRAM_SCORES,
        "score (bin's lower edge)",
        "No instances in this run.",
    )
    return (
        '<h2>Distributions</h2><div class="cards">'
        f'<div class="figure"><h3>Images by number of instances</h3>{per_image}</div>'
        f'<div class="figure"><h3>Instances by score</h3>{scores}</div></div>'
    )


def _errors_section(errors: Sequence[ErrorKind]) -> str:
    if not errors:
        return "<h2>Errors</h2><p>No errors: every record read became an image row.</p>"
    rows = "".join(
        f'<tr><td>{_e(k.stage)}</td><td>{_e(k.error_type)}</td><td class="num">{k.count}</td>'
        f'<td class="message">{_e(k.example_source)} #{k.example_record_index}: '
        f"{_e(_shorten(k.example_message))}</td></tr>"
        for k in errors
    )
    return (
        "<h2>Errors</h2><table><tr><th>stage</th><th>error type</th>"
        f'<th class="num">count</th><th>example</th></tr>{rows}</table>'
    )


def _shorten(message: str) -> str:
    if len(message) <= _MAX_MESSAGE_CHARS:
        return message
    return message[: _MAX_MESSAGE_CHARS - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _gallery_section(classes: Sequence[ClassStats], gallery: Sequence[GalleryOverlay]) -> str:
    if not gallery:
        return "<h2>Gallery</h2><p>No images to show.</p>"
    legend = "".join(
        f'<span class="item"><span class="swatch" style="background:'
        f'{hex_colour(class_colour(c.class_id))}"></span>{_e(c.class_name)}</span>'
        for c in classes
    )
    figures = "".join(_figure(entry) for entry in gallery)
    return (
        f"<h2>Gallery</h2><p>Semantic classes as translucent colour; instances outlined, "
        f"labelled with class and score. First {len(gallery)} images by image id.</p>"
        f'<p class="legend">{legend}</p><div class="gallery">{figures}</div>'
    )


def _figure(entry: GalleryOverlay) -> str:
    image = entry.image
    uri = "data:image/png;base64," + base64.b64encode(entry.png).decode("ascii")
    name = image.filename or f"{image.source} #{image.record_index}"
    note = f'<div class="note">{_e(entry.note)}</div>' if entry.note else ""
    return (
        f'<figure id="image-{_e(image.image_id)}"><img src="{uri}" alt="overlay of {_e(name)}" '
        f'width="{entry.display_width}" height="{entry.display_height}">'
        f"<figcaption>{_e(name)} &middot; {image.width}x{image.height} &middot; "
        f"{image.num_instances} instances<br>{_e(image.image_id)}"
        f"</figcaption>{note}</figure>"
    )
