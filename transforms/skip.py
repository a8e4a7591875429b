"""Skips records whose encoded image an earlier run already processed (--skip_existing).

A nightly run over a bucket that keeps growing pays only for the new images:
the driver collects the `content_sha256` column of earlier runs' `images`
tables, and this step drops records with a known hash before they are decoded.
Each dropped record becomes a `skipped` row, so the ledger still accounts for
every record read (images + errors + skipped).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.elements import EncodedBatch
from transforms.rows import TableRows


class _SkipKnown(beam.DoFn):
    """EncodedBatch -> the batch without known images, then one TableRows per skipped record."""

    def __init__(self, known_hashes: frozenset[str]) -> None:
        self._known = known_hashes
        self._skipped = Metrics.counter("segbeam", "images_skipped")

    def process(self, batch: EncodedBatch) -> Iterator[EncodedBatch | TableRows]:
        kept = []
        for record in batch:
            digest = hashlib.sha256(record.encoded).hexdigest() if record.encoded else None
            if digest is None or digest not in self._known:
                kept.append(record)
                continue
            self._skipped.inc()
            row = {
                "source": record.ref.source,
                "record_index": record.ref.record_index,
                "image_id": record.ref.image_id,
                "content_sha256": digest,
            }
            yield TableRows(record.ref.image_id, {"skipped": [row]})
        if kept:
            yield tuple(kept)


class SkipKnownImages(beam.PTransform):
    """Drops records whose encoded bytes hash to one of `known_hashes`.

    Input: PCollection[EncodedBatch]. Output: a dict with "batches"
    (PCollection[EncodedBatch], the records to process) and "skipped"
    (PCollection[TableRows] for the `skipped` table).
    """

    def __init__(self, known_hashes: frozenset[str]) -> None:
        super().__init__()
        self._known = frozenset(known_hashes)

    def expand(self, batches: beam.PCollection) -> dict[str, beam.PCollection]:
        mixed = batches | "SkipKnown" >> beam.ParDo(_SkipKnown(self._known))
        return {
            "batches": mixed | "KeepBatches" >> beam.Filter(lambda e: not isinstance(e, TableRows)),
            "skipped": mixed | "KeepSkipped" >> beam.Filter(lambda e: isinstance(e, TableRows)),
        }
