"""The speed-ups of the builder keep its results: each fast path against the plain computation it replaced."""

from __future__ import annotations

import io
import json
import os
import random
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_builders import augment, panel_grid
from dataset_builders.config import BuildConfig
from dataset_builders.export import link_image
from fracto_core.files import write_bytes_atomic
from dataset_builders.validate import check_dataset


def _texture(width: int, height: int, seed: int) -> Image.Image:
    """A grey micrograph-like texture (smooth blobs plus noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = 128 + 60 * np.sin(xx / 7.0 + seed) * np.cos(yy / 11.0) + rng.normal(0, 12, (height, width))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _rotate_then_crop(image: Image.Image, angle: float, fill=0) -> Image.Image:
    """The straightforward way: rotate the whole image onto an expanded canvas, then crop the centre."""
    rotated = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
    w, h = augment.largest_inscribed_rect(image.width, image.height, angle)
    w = max(1, int(w) - 2 * augment.CROP_MARGIN_PX)
    h = max(1, int(h) - 2 * augment.CROP_MARGIN_PX)
    left, top = (rotated.width - w) // 2, (rotated.height - h) // 2
    return rotated.crop((left, top, left + w, top + h))


@pytest.mark.parametrize("size", [(480, 320), (322, 500), (256, 256)])
@pytest.mark.parametrize("angle", [1.0, 17.3, 45.0, 133.7, 200.2, 358.9])
def test_crop_window_rotation_equals_rotate_then_crop(size: tuple[int, int], angle: float) -> None:
    image = _texture(*size, seed=size[0] + int(angle))
    fast = augment.rotate_and_crop(image, angle)
    slow = _rotate_then_crop(image, angle)
    assert fast.size == slow.size
    assert fast.tobytes() == slow.tobytes()


def test_crop_window_rotation_rgb_and_odd_sizes() -> None:
    rgb = Image.merge("RGB", [_texture(301, 199, s) for s in (1, 2, 3)])
    for angle in (3.5, 61.0, 271.4):
        fast = np.asarray(augment.rotate_and_crop(rgb, angle, fill=(255, 255, 255)), dtype=int)
        slow = np.asarray(_rotate_then_crop(rgb, angle, fill=(255, 255, 255)), dtype=int)
        assert fast.shape == slow.shape
        # moving the map's origin may change the last bit of a coordinate on an exact pixel centre
        assert np.abs(fast - slow).max() <= 1
        assert (fast != slow).sum() <= 3
    assert augment.rotate_and_crop(rgb, 90.0).size == (199 - 4, 301 - 4)  # lossless angles keep rotate()


def _naive_white(grey: np.ndarray, lines: np.ndarray) -> np.ndarray:
    mean = lines.mean(axis=1)
    return (mean > panel_grid.GUTTER_MEAN) & (lines.var(axis=1) < panel_grid.GUTTER_STD ** 2)


@pytest.mark.parametrize("shape", [(320, 485), (97, 61), (1700, 2500)])
def test_line_stats_match_direct_mean_and_std(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    grey = rng.integers(200, 256, shape, dtype=np.uint8)
    grey[:, shape[1] // 2: shape[1] // 2 + 3] = 255  # a white gutter column
    grey[shape[0] // 3, :] = 250  # a white row
    stats = panel_grid._LineStats(grey)
    step = stats.step
    pick = random.Random(shape[1])
    for _ in range(40):
        x0 = pick.randrange(shape[1] - 1)
        x1 = pick.randrange(x0 + 1, shape[1] + 1)
        y0 = pick.randrange(shape[0] - 1)
        y1 = pick.randrange(y0 + 1, shape[0] + 1)
        a, b = stats._span(x0, x1, -(-shape[1] // step))
        rows = grey[y0:y1, ::step][:, a:b].astype(np.float64)
        assert np.array_equal(stats.white_rows((x0, y0, x1, y1)), _naive_white(grey, rows))
        a, b = stats._span(y0, y1, -(-shape[0] // step))
        cols = grey[::step, x0:x1][a:b, :].T.astype(np.float64)
        assert np.array_equal(stats.white_cols((x0, y0, x1, y1)), _naive_white(grey, cols))


def test_line_stats_on_the_thresholds_match_exact_integer_arithmetic() -> None:
    """Lines whose mean is exactly GUTTER_MEAN or whose variance is exactly GUTTER_STD**2 are not white, one
    grey level inside either is: the segment sums (squares only on bright lines) decide as exact integers."""
    rows = [np.full(64, 240), np.full(64, 241), np.tile([229, 253], 32), np.tile([230, 252], 32),
            np.tile([228, 254], 32), np.tile([240, 242], 32), np.r_[np.full(63, 255), 0], np.full(64, 255)]
    grey = np.vstack(rows).astype(np.uint8)
    expected = [False, True, False, True, False, True, False, True]  # one black pixel in 64: variance 996
    # the rule in integers: mean > 240 and variance < 144, i.e. sum > 240 n and n * sum(x^2) - sum^2 < 144 n^2
    n = grey.shape[1]
    total, squares = grey.astype(np.int64).sum(axis=1), (grey.astype(np.int64) ** 2).sum(axis=1)
    exact = (total > panel_grid.GUTTER_MEAN * n) & (n * squares - total * total < panel_grid.GUTTER_STD ** 2 * n * n)
    assert exact.tolist() == expected
    stats = panel_grid._LineStats(grey)
    assert stats.white_rows((0, 0, n, len(rows))).tolist() == expected
    assert panel_grid._LineStats(np.ascontiguousarray(grey.T)).white_cols((0, 0, len(rows), n)).tolist() == expected


def test_grid_of_a_two_by_two_figure() -> None:
    fig = np.full((400, 600), 255, np.uint8)
    for y0, x0 in ((10, 10), (10, 305), (205, 10), (205, 305)):
        fig[y0:y0 + 185, x0:x0 + 285] = np.asarray(_texture(285, 185, seed=x0 + y0))
    grid = panel_grid.find_grid(Image.fromarray(fig))
    assert grid.problem == ""
    assert grid.cells == [(10, 10, 295, 195), (305, 10, 590, 195), (10, 205, 295, 390), (305, 205, 590, 390)]


@pytest.mark.parametrize("durable", [True, False])
def test_write_bytes_atomic_with_and_without_fsync(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "sub" / "img.jpg"
    write_bytes_atomic(target, b"first", durable=durable)
    write_bytes_atomic(target, b"second", durable=durable)
    assert target.read_bytes() == b"second"
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)
    assert sorted(p.name for p in target.parent.iterdir()) == ["img.jpg"]  # no temporary file left


def test_link_image_links_new_keeps_same_replaces_different(tmp_path: Path) -> None:
    src = tmp_path / "a.jpg"
    src.write_bytes(b"jpeg bytes")
    dst = tmp_path / "out" / "x.jpg"
    made: set[Path] = set()
    link_image(src, dst, made)
    assert os.path.samefile(src, dst) and made == {dst.parent}
    link_image(src, dst, made)  # already there: kept
    assert os.path.samefile(src, dst)
    dst.unlink()
    dst.write_bytes(b"other")
    link_image(src, dst, made)
    assert os.path.samefile(src, dst) and dst.read_bytes() == b"jpeg bytes"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["x.jpg"]


def test_link_image_relinks_an_identical_copy(tmp_path: Path) -> None:
    """A stage re-run rewrites its images: the export's identical copy is linked again, not read and kept."""
    src = tmp_path / "a.jpg"
    src.write_bytes(b"jpeg bytes")
    dst = tmp_path / "out" / "x.jpg"
    dst.parent.mkdir()
    dst.write_bytes(b"jpeg bytes")  # same content, another file
    assert not os.path.samefile(src, dst)
    link_image(src, dst, set())
    assert os.path.samefile(src, dst) and dst.read_bytes() == b"jpeg bytes"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["x.jpg"]


def _png_with_bad_crc() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (40, 30), 128).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    idat = data.index(b"IDAT")
    length = int.from_bytes(data[idat - 4: idat], "big")
    crc_at = idat + 4 + length
    good = zlib.crc32(bytes(data[idat: crc_at]))
    data[crc_at: crc_at + 4] = ((good + 1) & 0xFFFFFFFF).to_bytes(4, "big")
    return bytes(data)


def test_validation_opens_each_image_once_and_still_catches_broken_files(tmp_path: Path) -> None:
    ds = tmp_path / "dataset"
    (ds / "images").mkdir(parents=True)
    buf = io.BytesIO()
    _texture(64, 48, 3).save(buf, "JPEG", quality=95)
    (ds / "images" / "ok.jpg").write_bytes(buf.getvalue())
    (ds / "images" / "bad_crc.png").write_bytes(_png_with_bad_crc())
    (ds / "images" / "junk.jpg").write_bytes(b"not an image at all")
    answer = '{"features": ["fatigue striations"]}'

    def sample(image: str) -> dict:
        return {"messages": [{"role": "user", "content": "<image>name the features"},
                             {"role": "assistant", "content": answer}], "images": [image]}

    samples = [sample("images/ok.jpg"), sample("images/bad_crc.png"), sample("images/junk.jpg"),
               sample("images/ok.jpg"), sample("images/missing.jpg")]
    (ds / "d.json").write_text(json.dumps(samples))
    (ds / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "d.json"}}))
    check = check_dataset(ds, BuildConfig())
    bad = {p.file: p.detail for p in check.problems}
    assert set(bad) == {"d.json#1", "d.json#2", "d.json#4"}
    assert "bad_crc.png does not open" in bad["d.json#1"]
    assert "junk.jpg does not open" in bad["d.json#2"]
    assert "does not exist" in bad["d.json#4"]
    assert all(p.reason == "bad_image" for p in check.problems)
    assert check.samples == 5 and check.max_image_tokens > 0


def test_derived_jpegs_keep_the_source_tables_and_grey_rgb_becomes_grey(tmp_path: Path) -> None:
    """dataset_builders.jpeg: a crop keeps its source's tables, a 90-degree turn gets them transposed, a
    rotated copy of a grey RGB image is grey, and a non-JPEG source is encoded at quality 95."""
    from dataset_builders import jpeg

    grey = _texture(160, 96, seed=5)
    src = tmp_path / "src.jpg"
    grey.convert("RGB").save(src, quality=70)
    with Image.open(src) as im:
        source_q = {k: list(v) for k, v in im.quantization.items()}
    pixels, tables = jpeg.decode(src)
    assert pixels.mode == "RGB" and tables is not None
    with Image.open(io.BytesIO(jpeg.encode(pixels.crop((8, 8, 88, 72)), tables))) as crop:
        assert {k: list(v) for k, v in crop.quantization.items()} == source_q
    turned, turned_tables = jpeg.decode(src, grey=True)
    assert turned.mode == "L"  # equal channels: written as grey
    with Image.open(io.BytesIO(jpeg.encode(turned.transpose(Image.Transpose.ROTATE_90),
                                           turned_tables.transposed()))) as rot:
        table = source_q[0]
        assert list(rot.quantization[0]) == [table[(i % 8) * 8 + i // 8] for i in range(64)]
        assert rot.mode == "L" and rot.size == (96, 160)
    png = tmp_path / "src.png"
    grey.save(png)
    plain, none = jpeg.decode(png)
    assert none is None
    reference = io.BytesIO()
    plain.save(reference, "JPEG", quality=95)
    assert jpeg.encode(plain, None) == reference.getvalue()


def test_keep_freed_memory_takes_on_glibc_linux():
    import platform
    import sys

    from dataset_builders.workers import keep_freed_memory

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert keep_freed_memory() is True


def test_builders_run_pymupdf_without_its_layout_analyser():
    """dataset_builders refuses pymupdf.layout and pymupdf4llm (ONNX Runtime: ~0.8 s and ~95 MiB a process);
    PyMuPDF then works as without the package. A fresh interpreter, so nothing imported pymupdf before."""
    import subprocess
    import sys

    code = ("import sys, dataset_builders, pymupdf; doc = pymupdf.open(); doc.new_page().insert_text((72, 72), 'x'); "
            "print(pymupdf._get_layout is None, 'onnxruntime' in sys.modules, doc[0].get_text().strip())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["True", "False", "x"]


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_lossless_rotations_from_earlier_ones_equal_direct_transposes(mode: str) -> None:
    """augment makes 270 from 90 (a half turn of it): the same pixels as Pillow's ROTATE_270, any size."""
    rng = np.random.default_rng(3)
    shape = (37, 52) if mode == "L" else (37, 52, 3)
    image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    done: dict[int, Image.Image] = {}
    for angle in (90, 180, 270):
        done[angle] = augment.rotate_lossless(image, angle, done)
        assert np.array_equal(np.asarray(done[angle]), np.rot90(np.asarray(image), angle // 90)), angle


def _uniform_edges_per_line(grey: np.ndarray) -> tuple[tuple[int, int, int, int], list[float]]:
    """panel_grid._uniform_edges as it was: one numpy std per edge line."""
    height, width = grey.shape

    def strip(get, lo: int, hi: int, step: int) -> int:
        i = lo
        while i != hi and float(get(i).std()) < panel_grid.GUTTER_STD:
            i += step
        return i

    top = strip(lambda i: grey[i], 0, height, 1)
    bottom = strip(lambda i: grey[i], height - 1, top - 1, -1) + 1
    if bottom - top < 2:
        return (0, top, width, bottom), []
    left = strip(lambda i: grey[top:bottom, i], 0, width, 1)
    right = strip(lambda i: grey[top:bottom, i], width - 1, left - 1, -1) + 1
    means = [float(r.mean()) for present, r in ((top > 0, grey[:top]), (bottom < height, grey[bottom:]),
                                                (left > 0, grey[:, :left]), (right < width, grey[:, right:]))
             if present]
    return (left, top, right, bottom), means


def test_uniform_edges_in_batches_equal_one_std_per_line() -> None:
    """The batched edge scan finds the same box and strip means as one std per line: margins of every width
    (0 to the whole figure), noisy margins, lines whose std lies within a hair of GUTTER_STD either side."""
    rng = np.random.default_rng(7)
    cases = [np.full((40, 30), 255, np.uint8), np.zeros((1, 1), np.uint8), np.full((3, 50), 9, np.uint8)]
    for k in range(150):
        h, w = int(rng.integers(2, 90)), int(rng.integers(2, 90))
        fig = rng.integers(0, 256, (h, w), dtype=np.uint8)
        level = int(rng.integers(0, 256))
        spread = int(rng.integers(0, 60))  # noise in the margins: some lines pass, some do not
        margins = [int(rng.integers(0, max(1, h // 2 + 1))), int(rng.integers(0, max(1, h // 2 + 1))),
                   int(rng.integers(0, max(1, w // 2 + 1))), int(rng.integers(0, max(1, w // 2 + 1)))]
        noise = np.clip(level + rng.integers(-spread, spread + 1, (h, w)), 0, 255).astype(np.uint8)
        mask = np.zeros((h, w), bool)
        mask[:margins[0]] = mask[h - margins[1]:] = True
        mask[:, :margins[2]] = mask[:, w - margins[3]:] = True
        fig[mask] = noise[mask]
        cases.append(fig)
    # two-level lines with std exactly 12 (not uniform) and just under it (uniform)
    on = np.tile(np.array([228, 252], np.uint8), 20)
    under = np.tile(np.array([229, 252], np.uint8), 20)
    cases += [np.vstack([on, under, on, np.arange(40, dtype=np.uint8) * 6]).astype(np.uint8),
              np.vstack([under, under, np.arange(40, dtype=np.uint8) * 6, on]).astype(np.uint8).T.copy()]
    for fig in cases:
        assert panel_grid._uniform_edges(fig) == _uniform_edges_per_line(fig), fig.shape


def test_one_textpage_pass_gives_the_text_and_placements_of_two() -> None:
    """pdf.images.page_text_and_graphics against get_text + page_graphics: a page without images, and images
    placed whole, under a clip path, mirrored, turned, skewed, half and fully off the page."""
    import pymupdf

    from dataset_builders.pdf.images import page_graphics, page_text_and_graphics
    from dataset_builders.pdf.text import TEXT_FLAGS

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (48, 64), dtype=np.uint8), "L").save(buf, "JPEG")
    doc = pymupdf.open()
    plain = doc.new_page(width=300, height=400)
    plain.insert_text((30, 60), "Fig. 1. A caption without an image (a) and (b).")
    page = doc.new_page(width=300, height=400)
    page.insert_text((30, 60), "Text before (a)")
    page.insert_image(pymupdf.Rect(20, 80, 140, 170), stream=buf.getvalue())
    page.insert_text((30, 190), "(b) text between images")
    name = page.get_images(full=True)[0][7]
    placements = ["q 10 10 60 60 re W n 100 0 0 80 5 200 cm /{n} Do Q", "q -90.3 0 0 70.7 290 210 cm /{n} Do Q",
                  "q 0 60 -50 0 200 300 cm /{n} Do Q", "q 40 10 15 50 30 320 cm /{n} Do Q",
                  "q 100 0 0 100 250 -50 cm /{n} Do Q", "q 50 0 0 50 400 500 cm /{n} Do Q"]
    doc.update_stream(page.get_contents()[0], page.read_contents() + "\n".join(
        [""] + [p.format(n=name) for p in placements]).encode())
    for number in (0, 1):
        one = doc[number]
        text, graphics = page_text_and_graphics(doc, one, one.rect, TEXT_FLAGS)
        two = doc[number]
        assert text == two.get_text("dict", flags=TEXT_FLAGS)
        old = page_graphics(doc, two, two.rect)
        assert [(g.bbox, g.kind, g.xref, g.width, g.height) for g in graphics] == \
            [(g.bbox, g.kind, g.xref, g.width, g.height) for g in old]
        assert [{k: v for k, v in g.info.items() if k != "number"} for g in graphics] == \
            [{k: v for k, v in g.info.items() if k != "number"} for g in old]
    assert len({g.bbox for g in graphics}) == 6  # all but the one off the page
