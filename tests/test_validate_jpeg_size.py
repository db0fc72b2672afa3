"""validate.jpeg_header_size, the validation's fast reader of a JPEG's size, against Pillow's Image.open.

The contract: whenever it returns a size, Image.open of the same bytes gives that size and format "JPEG"
without an error (so the check catches what it caught with Pillow alone); anything else returns None and
the caller asks Pillow. Held on encoder output (the layouts the builder writes) and on every byte of a
header mutated, and every length of it cut short.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_builders.config import BuildConfig
from dataset_builders.validate import check_dataset, jpeg_header_size


def _jpeg(width: int, height: int, mode: str = "L", **save) -> bytes:
    rng = np.random.default_rng(width * 7 + height)
    shape = (height, width) if mode == "L" else (height, width, 3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, "JPEG", **save)  # mode from the shape
    return buf.getvalue()


def _pillow(path: Path) -> tuple[int, int] | None:
    """Image.open's size when it opens the file as a JPEG, else None (what the validator's Pillow path accepts)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                return img.size if img.format == "JPEG" else None
    except Exception:  # noqa: BLE001 - any failure is "does not open"
        return None


def _agrees(path: Path, data: bytes) -> tuple[int, int] | None:
    path.write_bytes(data)
    fast = jpeg_header_size(str(path))
    if fast is not None:
        assert fast == _pillow(path), f"fast {fast} vs Pillow {_pillow(path)}"
    return fast


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("save", [{"quality": 95}, {"quality": 50, "optimize": True}, {"progressive": True},
                                  {"quality": 90, "subsampling": 0}])
@pytest.mark.parametrize("size", [(1, 1), (17, 9), (640, 480), (2000, 12)])
def test_encoder_output_reads_as_pillow_does(tmp_path: Path, mode: str, save: dict, size: tuple[int, int]) -> None:
    assert _agrees(tmp_path / "x.jpg", _jpeg(*size, mode, **save)) == size  # the plain layout: never left to Pillow


def test_other_layouts_are_left_to_pillow(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "camera"
    assert _agrees(tmp_path / "a.jpg", _jpeg(40, 30, "RGB", exif=exif.tobytes())) is None  # APP1 before the frame
    assert _agrees(tmp_path / "b.jpg", _jpeg(40, 30, "RGB", icc_profile=b"\0" * 200)) is None  # APP2
    buf = io.BytesIO()
    Image.new("CMYK", (40, 30)).save(buf, "JPEG")
    assert _agrees(tmp_path / "c.jpg", buf.getvalue()) is None  # Adobe APP14, 4 components
    Image.new("L", (40, 30)).save(tmp_path / "d.png")
    assert jpeg_header_size(str(tmp_path / "d.png")) is None
    assert jpeg_header_size(str(tmp_path / "missing.jpg")) is None
    big = Image.MAX_IMAGE_PIXELS
    try:  # over Pillow's pixel limit: Pillow warns or refuses, so it decides
        Image.MAX_IMAGE_PIXELS = 100
        assert _agrees(tmp_path / "e.jpg", _jpeg(20, 10)) is None
    finally:
        Image.MAX_IMAGE_PIXELS = big


def _header_end(data: bytes) -> int:
    """The offset just past the SOS segment."""
    pos = 2
    while data[pos + 1] != 0xDA:
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_mutated_and_truncated_headers_never_disagree_with_pillow(tmp_path: Path, mode: str) -> None:
    data = _jpeg(48, 32, mode, quality=95, optimize=mode == "L")
    end = _header_end(data)
    path = tmp_path / "m.jpg"
    fast_hits = 0
    for i in range(end):
        for value in {0x00, 0x01, 0x0F, 0x10, 0x7F, 0xC0, 0xDA, 0xFF, data[i] ^ 0x01, data[i] ^ 0x80}:
            if value != data[i]:
                fast_hits += _agrees(path, data[:i] + bytes([value]) + data[i + 1:]) is not None
    for n in range(end + 8):
        _agrees(path, data[:n])
    assert fast_hits > 0  # some mutations (table values, density) keep a readable header


def test_validation_still_catches_a_broken_header(tmp_path: Path) -> None:
    """A JPEG whose frame says 12-bit, or whose quantization table is cut, does not open (Pillow's verdict)."""
    ds = tmp_path / "dataset"
    (ds / "images").mkdir(parents=True)
    good = _jpeg(64, 48)
    sof = good.index(b"\xff\xc0")
    (ds / "images" / "ok.jpg").write_bytes(good)
    (ds / "images" / "bits.jpg").write_bytes(good[:sof + 4] + b"\x0c" + good[sof + 5:])
    dqt = good.index(b"\xff\xdb")
    (ds / "images" / "dqt.jpg").write_bytes(good[:dqt + 3] + bytes([good[dqt + 3] - 1]) + good[dqt + 4:])
    answer = '{"features": ["fatigue striations"]}'
    samples = [{"messages": [{"role": "user", "content": "<image>name the features"},
                             {"role": "assistant", "content": answer}], "images": [f"images/{name}"]}
               for name in ("ok.jpg", "bits.jpg", "dqt.jpg")]
    (ds / "d.json").write_text(json.dumps(samples))
    (ds / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "d.json"}}))
    check = check_dataset(ds, BuildConfig())
    assert {p.file: p.reason for p in check.problems} == {"d.json#1": "bad_image", "d.json#2": "bad_image"}
    assert all("does not open" in p.detail for p in check.problems)
