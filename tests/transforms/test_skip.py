"""SkipKnownImages: known images become skipped rows; the rest go on, batched as before."""

import hashlib

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.elements import EncodedImage, ImageRef, StageError
from transforms.skip import SkipKnownImages


def _record(i, data):
    error = None if data else StageError("read", "CorruptRecord", "crc")
    return EncodedImage(ImageRef(f"id{i}", "/s.tfrecord", i), data, "", "", None, error)


def test_known_images_are_skipped_and_the_rest_kept():
    known = frozenset({hashlib.sha256(b"old").hexdigest()})
    batch = (_record(0, b"old"), _record(1, b"new"), _record(2, None), _record(3, b"old"))
    with TestPipeline() as p:
        out = p | beam.Create([batch]) | SkipKnownImages(known)
        kept = out["batches"] | "Ids" >> beam.Map(lambda b: [r.ref.image_id for r in b])
        assert_that(kept, equal_to([["id1", "id2"]]), label="kept")
        skipped = out["skipped"] | beam.Map(lambda t: (t.partition_key, t.tables["skipped"][0]))
        expected_row = {
            "source": "/s.tfrecord",
            "image_id": "id0",
            "record_index": 0,
            "content_sha256": hashlib.sha256(b"old").hexdigest(),
        }
        assert_that(
            skipped | "Keys" >> beam.Map(lambda kv: kv[0]), equal_to(["id0", "id3"]), label="ids"
        )
        assert_that(
            skipped | "First" >> beam.Filter(lambda kv: kv[0] == "id0") | beam.Values(),
            equal_to([expected_row]),
            label="row",
        )


def test_a_batch_of_only_known_images_yields_no_empty_batch():
    known = frozenset({hashlib.sha256(b"old").hexdigest()})
    with TestPipeline() as p:
        out = p | beam.Create([(_record(0, b"old"),)]) | SkipKnownImages(known)
        assert_that(out["batches"], equal_to([]), label="no batches")
