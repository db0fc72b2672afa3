"""The heavy benchmark corpus: paper-like PDFs as heavy as real fractography papers (benchmark data only).

Usage:
    python benchmarks/heavy_corpus.py --out /tmp/heavy --papers 200 --seed 1
    python benchmarks/heavy_corpus.py --out /tmp/real --papers 200 --sizes real   # real papers' image sizes

Each paper has 6 pages and 3 figures: a 2 x 2 composite JPEG with white gutters (one RGB image,
1250 x 1000 px), three side-by-side grey JPEGs (1000 x 625 px each, letters printed under them) and a
vector stress-strain plot; captions name the panels with letters, the body text cites them ("Fig. 1b").
Per paper: 4 embedded images, 3.125 Mpx; 200 papers: 800 images, 625 Mpx. Everything follows from the
seed (numpy / random generators seeded per paper), so a corpus is the same bytes on every machine with the
same library versions. Not the built-in sample corpus (dataset_builders/sample_corpus): no ground truth,
only weight.

--sizes real: the same papers, but every embedded image (the composite and each side-by-side one) gets a
pixel count drawn from the sizes of real papers' embedded images (516 images >= 96 px of 27 real PDFs:
median 0.25 Mpx, quartiles 0.10 / 0.51 Mpx; DESIGN 6b) instead of 0.78 Mpx on average: REAL_MPX_QUANTILES,
interpolated in log space, aspect ratios kept. On the heavy corpus decoding dominates and per-panel costs
hide; on this one they show. 200 papers, seed 1: median 0.25 Mpx, quartiles 0.10 / 0.50 (real_size_summary).
"""

from __future__ import annotations

import argparse
import io
import math
import random
import time
from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image

COMPOSITE_PX = (1250, 1000)  # w, h of the 2 x 2 composite (one image)
GUTTER_PX = 24  # white gutter between its panels
TRIPLE_PX = (1000, 625)  # w, h of each side-by-side image
JPEG_QUALITY = 88
PAGE_W, PAGE_H = 595.0, 842.0
MARGIN = 56.0
# (quantile, Mpx) of real papers' embedded images: quartiles and median measured (DESIGN 6b); the ends are
# the smallest image the miner keeps (96 x 96 px, ~0.01 Mpx; 0.02 keeps the composite's quarters above it)
# and a full-page scan at 2 Mpx
REAL_MPX_QUANTILES = ((0.0, 0.02), (0.25, 0.10), (0.5, 0.25), (0.75, 0.51), (1.0, 2.0))
SIZES = ("heavy", "real")
FEATURES = ("equiaxed dimples", "elongated dimples", "cleavage facets", "river patterns", "fatigue striations",
            "intergranular facets", "secondary cracks", "tear ridges", "gas pore", "beach marks", "quasi-cleavage")
FILLER = ("The specimens were machined from the as-received plate and tested at room temperature. "
          "Loading followed the standard procedure and each condition was repeated three times. "
          "The results are discussed below together with the observations made after testing. ")


def texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A grey, textured uint8 array (smooth relief + fine grain): what an SEM fractograph looks like."""
    coarse = rng.normal(0.0, 1.0, (max(2, height // 24), max(2, width // 24))).astype(np.float32)
    relief = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(relief) * 38.0 + 120.0
    arr += rng.normal(0.0, 14.0, (height, width)).astype(np.float32)
    return np.clip(arr, 10, 225).astype(np.uint8)


def _jpeg(arr: np.ndarray, mode: str) -> bytes:
    img = Image.fromarray(arr)
    if mode == "RGB":
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def real_size(rng: np.random.Generator, aspect: tuple[int, int]) -> tuple[int, int]:
    """(w, h) with the aspect of `aspect` and a pixel count drawn from REAL_MPX_QUANTILES."""
    qs, mpx = zip(*REAL_MPX_QUANTILES)
    pixels = 1e6 * math.exp(np.interp(rng.uniform(), qs, [math.log(m) for m in mpx]))
    w = math.sqrt(pixels * aspect[0] / aspect[1])
    return max(96, round(w)), max(96, round(w * aspect[1] / aspect[0]))


def real_size_summary(n: int = 800, seed: int = 1) -> tuple[float, float, float]:
    """(lower quartile, median, upper quartile) in Mpx of n sizes drawn as --sizes real draws them."""
    rng = np.random.default_rng(seed)
    mpx = [w * h / 1e6 for w, h in (real_size(rng, TRIPLE_PX) for _ in range(n))]
    q1, q2, q3 = np.quantile(mpx, [0.25, 0.5, 0.75])
    return float(q1), float(q2), float(q3)


def composite(rng: np.random.Generator, size: tuple[int, int] = COMPOSITE_PX) -> bytes:
    """2 x 2 panels separated by white gutters and a white outer margin, as one RGB JPEG."""
    w, h = size
    gutter = max(4, round(GUTTER_PX * w / COMPOSITE_PX[0]))  # as wide, relative to the figure, as at full size
    canvas = np.full((h, w), 255, np.uint8)
    pw, ph = (w - 3 * gutter) // 2, (h - 3 * gutter) // 2
    for row in range(2):
        for col in range(2):
            x, y = gutter + col * (pw + gutter), gutter + row * (ph + gutter)
            canvas[y:y + ph, x:x + pw] = texture(rng, pw, ph)
    return _jpeg(canvas, "RGB")


def _paragraphs(page: pymupdf.Page, top: float, bottom: float, text: str) -> None:
    page.insert_textbox(pymupdf.Rect(MARGIN, top, PAGE_W - MARGIN, bottom), text, fontsize=9.5, fontname="helv")


def _caption(page: pymupdf.Page, top: float, text: str) -> float:
    rect = pymupdf.Rect(MARGIN, top, PAGE_W - MARGIN, top + 60)
    page.insert_textbox(rect, text, fontsize=8.5, fontname="helv")
    return rect.y1


def _plot(page: pymupdf.Page, rect: pymupdf.Rect, r: random.Random) -> None:
    """Axes, ticks and three curves: a vector stress-strain plot."""
    shape = page.new_shape()
    x0, y0, x1, y1 = rect.x0 + 30, rect.y0 + 10, rect.x1 - 10, rect.y1 - 25
    shape.draw_line((x0, y1), (x1, y1))
    shape.draw_line((x0, y1), (x0, y0))
    for k in range(6):
        tx = x0 + k * (x1 - x0) / 5
        ty = y1 - k * (y1 - y0) / 5
        shape.draw_line((tx, y1), (tx, y1 + 3))
        shape.draw_line((x0 - 3, ty), (x0, ty))
    shape.finish(color=(0, 0, 0), width=0.8)
    for c in range(3):
        peak = r.uniform(0.5, 0.95)
        pts = []
        for i in range(40):
            e = i / 39
            s = peak * (1 - (1 - min(e / 0.15, 1)) ** 2) * (1 - 0.3 * max(0.0, e - 0.7))
            pts.append(pymupdf.Point(x0 + e * (x1 - x0) * (0.7 + 0.1 * c), y1 - s * (y1 - y0)))
        shape.draw_polyline(pts)
        shape.finish(color=(0.2 * c, 0.3, 0.8 - 0.2 * c), width=1.0)
    shape.commit()
    page.insert_text((x0 + 60, rect.y1 - 6), "Strain (%)", fontsize=7)
    page.insert_text((rect.x0 + 2, y0 + 40), "Stress (MPa)", fontsize=7, rotate=90)


def make_paper(index: int, seed: int, sizes: str = "heavy") -> bytes:
    """One 6-page paper's PDF bytes (deterministic in index, seed and sizes)."""
    r = random.Random(f"{seed}:{index}")
    rng = np.random.default_rng([seed, index])
    # heavy: the fixed sizes; real: drawn per image, from a generator of its own (the heavy corpus' bytes stay)
    size_rng = np.random.default_rng([seed, index, 1])
    comp_px = COMPOSITE_PX if sizes == "heavy" else real_size(size_rng, COMPOSITE_PX)
    triple_px = [TRIPLE_PX if sizes == "heavy" else real_size(size_rng, TRIPLE_PX) for _ in range(3)]
    feats = r.sample(FEATURES, 7)
    doc = pymupdf.open()
    for _ in range(6):
        doc.new_page(width=PAGE_W, height=PAGE_H)
    pages = [doc[i] for i in range(6)]  # loaded after all are made (new_page orphans earlier Page objects)
    pages[0].insert_text((MARGIN, 80), f"Fatigue and fracture of alloy {index:03d} after heat treatment", fontsize=15)
    pages[0].insert_text((MARGIN, 100), f"https://doi.org/10.9999/heavy.{seed}.{index:04d}", fontsize=8)
    body1 = (f"As shown in Fig. 1a, the fracture surface shows {feats[0]}, while Fig. 1(b) shows {feats[1]}. "
             f"The regions in Fig. 1c and Fig. 1d reveal {feats[2]} and {feats[3]}. " + FILLER * 6)
    _paragraphs(pages[0], 120, PAGE_H - MARGIN, body1)

    # page 2: Fig. 1, the 2 x 2 composite
    w, h = COMPOSITE_PX
    fig_w = PAGE_W - 2 * MARGIN
    rect = pymupdf.Rect(MARGIN, 70, MARGIN + fig_w, 70 + fig_w * h / w)
    pages[1].insert_image(rect, stream=composite(rng, comp_px))
    y = _caption(pages[1], rect.y1 + 8,
                 f"Fig. 1. SEM fractographs of the fracture surface: (a) {feats[0]}; (b) {feats[1]}; "
                 f"(c) {feats[2]}; (d) {feats[3]}.")
    _paragraphs(pages[1], y + 10, PAGE_H - MARGIN, FILLER * 4)
    _paragraphs(pages[2], 70, PAGE_H - MARGIN,
                f"Fig. 2a shows {feats[4]} near the origin; Fig. 2b and Fig. 2c show {feats[5]} and {feats[6]}. "
                + FILLER * 10)

    # page 4: Fig. 2, three side-by-side images with printed letters
    gap = 10.0
    iw = (fig_w - 2 * gap) / 3
    ih = iw * TRIPLE_PX[1] / TRIPLE_PX[0]
    for k, letter in enumerate("abc"):
        x = MARGIN + k * (iw + gap)
        pages[3].insert_image(pymupdf.Rect(x, 80, x + iw, 80 + ih), stream=_jpeg(texture(rng, *triple_px[k]), "L"))
        pages[3].insert_text((x + iw / 2 - 5, 80 + ih + 11), f"({letter})", fontsize=8)
    y = _caption(pages[3], 80 + ih + 20,
                 f"Fig. 2. Fracture surfaces after fatigue testing: (a) {feats[4]}, (b) {feats[5]}, "
                 f"(c) {feats[6]}.")
    _paragraphs(pages[3], y + 10, PAGE_H - MARGIN, FILLER * 5)

    # page 5: Fig. 3, a vector plot
    plot = pymupdf.Rect(MARGIN + 60, 80, PAGE_W - MARGIN - 60, 300)
    _plot(pages[4], plot, r)
    y = _caption(pages[4], plot.y1 + 10, "Fig. 3. Engineering stress-strain curves of the three heat treatments.")
    _paragraphs(pages[4], y + 10, PAGE_H - MARGIN, "Fig. 3 compares the tensile curves. " + FILLER * 5)
    _paragraphs(pages[5], 70, PAGE_H - MARGIN, "References\n" + "\n".join(
        f"[{k}] A. Author, B. Author, J. Mater. Sci. {40 + k} (20{10 + k}) {100 + 7 * k}-{110 + 7 * k}."
        for k in range(1, 16)))
    data = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return data


def generate(out: Path, n_papers: int = 200, seed: int = 1, sizes: str = "heavy") -> Path:
    """Write OUT/papers/heavy-NNN.pdf (skipped when OUT/complete exists); returns the papers folder."""
    if sizes not in SIZES:
        raise ValueError(f"sizes {sizes!r}: expected one of {', '.join(SIZES)}")
    papers = Path(out) / "papers"
    marker = Path(out) / "complete"
    stamp = f"{n_papers} {seed}\n" if sizes == "heavy" else f"{n_papers} {seed} {sizes}\n"
    if marker.exists() and marker.read_text() == stamp:
        return papers
    papers.mkdir(parents=True, exist_ok=True)
    for i in range(n_papers):
        (papers / f"heavy-{i:03d}.pdf").write_bytes(make_paper(i, seed, sizes))
    marker.write_text(stamp)
    return papers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--papers", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sizes", choices=SIZES, default="heavy",
                    help="heavy: fixed 1250 x 1000 and 1000 x 625 px images; real: sizes of real papers' images")
    args = ap.parse_args()
    t0 = time.perf_counter()
    folder = generate(args.out, args.papers, args.seed, args.sizes)
    print(f"{args.papers} papers in {folder} ({time.perf_counter() - t0:.1f}s)")


if __name__ == "__main__":
    main()
