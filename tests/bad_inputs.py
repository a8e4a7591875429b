"""A corpus of bad and unusual inputs, built at test time, with what each must become.

`build_corpus(directory)` writes image files and TFRecord shards and returns one
`Expected` per input record: either an `images` row (with its display size, and
the pixels a "red foreground" model marks: red channel >= 128 in display
orientation) or exactly one `errors` row with a given `error_type`.

Expectations are written down by hand from how each file is built; where a
lossy codec (JPEG) blurs the pattern, the foreground comes from decoding the
file with Pillow directly (`ImageOps.exif_transpose` + `convert("RGB")`), not
from segbeam's decoder.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

RED = (255, 0, 0)
BLACK = (0, 0, 0)
# A record's filename that would escape the output directory if used as a path.
ESCAPING_FILENAME = "../../evil"
# Created only if some code unpickles an input (see `_pickle_payload`).
PICKLE_MARKER = "unpickled.marker"
EXIF_ORIENTATION_TAG = 0x0112


@dataclasses.dataclass(frozen=True)
class Expected:
    """What one input record must become."""

    name: str  # Case name, for assertion messages.
    path: Path
    record_index: int  # 0 for image files.
    error_type: str | None  # The errors row's error_type; None: an images row.
    size: tuple[int, int] | None = None  # (width, height) of the images row.
    foreground: np.ndarray | None = None  # bool [height, width] of the red-foreground mask.
    filename: str | None = None  # The images row's filename, where it is not the base name.

    @property
    def source(self) -> str:
        return str(self.path)


@dataclasses.dataclass(frozen=True)
class Corpus:
    directory: Path
    cases: tuple[Expected, ...]

    def case(self, name: str) -> Expected:
        (found,) = [c for c in self.cases if c.name == name]
        return found

    def file(self, name: str) -> Path:
        """The path of one input file of the corpus, by file name."""
        path = self.directory / name
        if not path.is_file():
            raise KeyError(f"the corpus has no file {name!r}")
        return path

    @property
    def sources(self) -> list[str]:
        return sorted({c.source for c in self.cases})


def _left_half(height: int, width: int) -> np.ndarray:
    """bool [height, width], True in the columns left of width // 2."""
    mask = np.zeros((height, width), bool)
    mask[:, : width // 2] = True
    return mask


def red_left_rgb(height: int, width: int) -> np.ndarray:
    """uint8 [height, width, 3]: red left half, black right half."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = RED
    return pixels


def encode_image(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _pillow_foreground(encoded: bytes) -> np.ndarray:
    """Red >= 128 after Pillow's own decode, EXIF transpose and RGB conversion."""
    with Image.open(io.BytesIO(encoded)) as image:
        rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    return rgb[:, :, 0] >= 128


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height RGB, with one tiny (useless) IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    chunks = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


class _Unpickled:
    """Unpickling this creates a marker file: the proof that some code unpickled input."""

    def __init__(self, marker: Path) -> None:
        self._marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self._marker), "w"))


def _pickle_payload(marker: Path) -> bytes:
    return pickle.dumps(_Unpickled(marker))


def _image_files(directory: Path) -> list[tuple[str, bytes, str | None, dict]]:
    """(file name, bytes, expected error_type, extra Expected fields) per image file."""
    rgb = red_left_rgb(20, 30)
    red_left = {"size": (30, 20), "foreground": _left_half(20, 30)}
    noise = np.random.default_rng(7).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    jpeg_noise = encode_image(Image.fromarray(noise), "JPEG", quality=90)
    png_noise = encode_image(Image.fromarray(noise), "PNG")

    rgba = np.dstack([rgb, np.zeros((20, 30), np.uint8)])  # Fully transparent red and black.
    gray = np.where(_left_half(16, 24), 200, 50).astype(np.uint8)
    alpha = np.full((16, 24), 10, np.uint8)  # Nearly transparent: alpha is dropped, not composited.
    gray16 = np.where(_left_half(12, 18), 40000, 20000).astype(np.uint16)  # >> 8: 156 and 78.
    palette = Image.fromarray(_left_half(10, 14).astype(np.uint8), "P")
    palette.putpalette([*BLACK, *RED] + [0] * (254 * 3))
    cmyk = np.zeros((16, 20, 4), np.uint8)
    cmyk[:, :10] = (0, 255, 255, 0)  # Red.
    cmyk[:, 10:] = (0, 0, 0, 255)  # Black.
    cmyk_jpeg = encode_image(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=95)

    # Stored 40 wide x 24 high with red on the left; EXIF orientation 6 means
    # "rotate 90 degrees clockwise to display": 24 wide x 40 high, red on top.
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    exif_jpeg = encode_image(
        Image.fromarray(red_left_rgb(24, 40)), "JPEG", quality=95, exif=exif.tobytes()
    )
    frames = [
        Image.fromarray(red_left_rgb(12, 16)),
        Image.fromarray(red_left_rgb(12, 16)[:, ::-1]),
    ]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)

    return [
        ("zero bytes.jpg", b"", "EmptyImage", {}),
        ("random.png", np.random.default_rng(3).bytes(2048), "UnsupportedFormat", {}),
        ("page.jpg", b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n",
         "UnsupportedFormat", {}),
        ("pickle.jpg", _pickle_payload(directory / PICKLE_MARKER), "UnsupportedFormat", {}),
        ("truncated.jpg", jpeg_noise[: len(jpeg_noise) // 2], "TruncatedImage", {}),
        ("truncated.png", png_noise[: len(png_noise) // 2], "TruncatedImage", {}),
        ("gray.png", encode_image(Image.fromarray(gray, "L"), "PNG"), None,
         {"size": (24, 16), "foreground": _left_half(16, 24)}),
        ("gray_alpha.png", encode_image(Image.fromarray(np.stack([gray, alpha], -1), "LA"), "PNG"),
         None, {"size": (24, 16), "foreground": _left_half(16, 24)}),
        ("rgba.png", encode_image(Image.fromarray(rgba, "RGBA"), "PNG"), None, red_left),
        ("palette.png", encode_image(palette, "PNG"), None,
         {"size": (14, 10), "foreground": _left_half(10, 14)}),
        ("cmyk.jpg", cmyk_jpeg, None,
         {"size": (20, 16), "foreground": _pillow_foreground(cmyk_jpeg)}),
        ("gray16.png", encode_image(Image.fromarray(gray16), "PNG"), None,
         {"size": (18, 12), "foreground": _left_half(12, 18)}),
        ("one_pixel.png", encode_image(Image.new("RGB", (1, 1), RED), "PNG"), None,
         {"size": (1, 1), "foreground": np.ones((1, 1), bool)}),
        ("bomb.png", bomb_png(30000, 30000), "ImageTooLarge", {}),
        # Over segbeam's default limit but under Pillow's own refusal threshold (2x the limit).
        ("bomb_100m.png", bomb_png(10000, 10000), "ImageTooLarge", {}),
        ("exif_rotated.jpg", exif_jpeg, None,
         {"size": (24, 40), "foreground": _pillow_foreground(exif_jpeg)}),
        ("animated.gif", gif.getvalue(), None,
         {"size": (16, 12), "foreground": _left_half(12, 16)}),
        ("name with spaces ü €.png", encode_image(Image.fromarray(rgb), "PNG"), None, red_left),
    ]  # fmt: skip


def _feature(value: bytes | list[int]) -> tf.train.Feature:
    if isinstance(value, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=value))


def tf_example(**features: bytes | list[int]) -> bytes:
    """A serialized tf.train.Example; keyword names use "__" for "/"."""
    feature_map = {key.replace("__", "/"): _feature(v) for key, v in features.items()}
    return tf.train.Example(features=tf.train.Features(feature=feature_map)).SerializeToString()


def write_tfrecord(path: Path, payloads: list[bytes]) -> bytes:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for payload in payloads:
            writer.write(payload)
    return path.read_bytes()


def _frame_offset(payloads: list[bytes], index: int) -> int:
    """Byte offset of frame `index`: each frame is 8 (length) + 4 + data + 4 bytes."""
    return sum(16 + len(p) for p in payloads[:index])


def _mixed_shard(path: Path, marker: Path) -> list[Expected]:
    """A shard with good records around a CRC-corrupted one and malformed Examples."""
    png = encode_image(Image.fromarray(red_left_rgb(10, 12)), "PNG")
    good = {"size": (12, 10), "foreground": _left_half(10, 12)}
    records: list[tuple[bytes, str | None, dict]] = [
        (tf_example(image__encoded=png, image__filename=b"first.png"), None,
         {**good, "filename": "first.png"}),
        (tf_example(image__encoded=png), None, {**good, "filename": ""}),
        (tf_example(image__encoded=png, image__filename=b"corrupted.png"), "CorruptRecord", {}),
        (tf_example(image__filename=b"no_image.png"), "MissingFeature", {}),
        (tf_example(image__encoded=[1, 2, 3]), "WrongFeatureType", {}),
        (tf_example(image__encoded=_pickle_payload(marker)), "UnsupportedFormat", {}),
        (tf_example(image__encoded=bomb_png(30000, 30000)), "ImageTooLarge", {}),
        (tf_example(image__encoded=png, image__filename=ESCAPING_FILENAME.encode()), None,
         {**good, "filename": ESCAPING_FILENAME}),
        (tf_example(image__encoded=png, image__filename=b"last.png"), None,
         {**good, "filename": "last.png"}),
    ]  # fmt: skip
    payloads = [payload for payload, _, _ in records]
    data = bytearray(write_tfrecord(path, payloads))
    # Flip one byte inside record 2's data: its data CRC no longer matches, its length still does.
    data[_frame_offset(payloads, 2) + 12 + len(payloads[2]) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    expected = []
    for index, (_, error_type, extra) in enumerate(records):
        expected.append(Expected(f"{path.name}#{index}", path, index, error_type, **extra))
    return expected


def _truncated_shard(path: Path) -> list[Expected]:
    """Two good records, then a third cut short: the rest of the shard is counted as lost."""
    png = encode_image(Image.fromarray(red_left_rgb(8, 8)), "PNG")
    payloads = [
        tf_example(image__encoded=png, image__filename=f"t{i}.png".encode()) for i in range(3)
    ]
    data = write_tfrecord(path, payloads)
    path.write_bytes(data[: _frame_offset(payloads, 2) + 20])
    good = {"size": (8, 8), "foreground": _left_half(8, 8)}
    return [
        Expected(f"{path.name}#0", path, 0, None, filename="t0.png", **good),
        Expected(f"{path.name}#1", path, 1, None, filename="t1.png", **good),
        Expected(f"{path.name}#2", path, 2, "TruncatedShard"),
    ]


def build_corpus(directory: Path) -> Corpus:
    """Writes the corpus into `directory` (created) and returns what each record must become."""
    directory.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, data, error_type, extra in _image_files(directory):
        path = directory / name
        path.write_bytes(data)
        cases.append(Expected(name, path, 0, error_type, **extra))
    cases += _mixed_shard(directory / "mixed shard ü.tfrecord", directory / PICKLE_MARKER)
    cases += _truncated_shard(directory / "truncated.tfrecord")
    return Corpus(directory, tuple(cases))
