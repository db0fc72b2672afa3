"""Stage 1, mine: figures, captions, panel letters, citing excerpts, title and DOI from each PDF.

Usage (alone): python -c "from dataset_builders import pdf_figures; ..." -- normally run by
``python -m dataset_builders.build``; writes stages/mine/<paper_id>/paper.json (+ the figure images).

Per page the miner pays for one ``get_text("dict")`` (text only: asking for image blocks too costs ~100x
more) and one ``get_image_info()``; vector drawings are looked at (``get_bboxlog``, far cheaper than
``get_drawings``) only on pages with a figure caption that no embedded image can explain.

Why not ``get_image_info(xrefs=True)``: PyMuPDF finds the xrefs by decoding every image of the page and
hashing the pixels, i.e. a full decode of every image once per page it is shown on -- more than the whole
decode floor by itself. We match each placed image to its xref by its declared signature instead (size in
pixels, bits, colour components, mask, compressed length), which needs no decoding at all.

Images are written as cheaply as the format allows: an embedded baseline JPEG in RGB or grey is written
with its source bytes (no decode, no re-encode); anything else is decoded once per paper with
``pymupdf.Pixmap(doc, xref)``, normalised to 8-bit RGB or L and written as JPEG q95 with Pillow
(libjpeg-turbo: ~15x faster than MuPDF's own JPEG writer here). Vector figures are rendered from their page
region at ``config.render_dpi``.
"""

from __future__ import annotations

import hashlib
import io
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pymupdf
from PIL import Image
from tqdm import tqdm

from dataset_builders.pdf.captions import cite_excerpts, parse_caption_start
from dataset_builders.config import BuildConfig
from dataset_builders.records import (
    Box,
    Excerpt,
    FigurePart,
    FigureRecord,
    PaperRecord,
    Problem,
    SkippedGraphic,
    StageResult,
)
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_model, write_bytes_atomic, write_model_atomic

STAGE = "mine"
TEXT_FLAGS = pymupdf.TEXTFLAGS_DICT & ~pymupdf.TEXT_PRESERVE_IMAGES  # text only: image blocks cost ~100x
JPEG_QUALITY = 95
MIN_BBOX_PT = 40.0  # graphics smaller than this on the page (either side) are icons, bullets, logos
BAND = 0.12  # header / footer band: top and bottom share of the page height
REPEAT_PAGES = 3  # an image in the band on this many pages is a publisher logo
GRAPHIC_GAP = 12.0  # graphics closer than this (pt) belong to the same figure
MERGE_GAP = 30.0  # an uncaptioned cluster this close to a captioned figure joins it (wide-gutter grids)
CAPTION_GAP = 50.0  # the farthest a caption sits from its figure (pt)
BELOW_PENALTY = 6.0  # prefer the figure above a caption over the one below it
DRAWING_GAP = 8.0  # drawing paths closer than this form one region
LABEL_MARGIN = 14.0  # panel letters / axis labels may sit this far outside a figure
TINY_RENDER_PX = 64 * 64  # rendered regions at most this big are saved as PNG (cost is negligible)
_PANEL_LABEL = re.compile(r"^\(?([A-La-l])\)?[.:]?$")
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>]+)", re.IGNORECASE)


# --- geometry --------------------------------------------------------------------------------------

def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _gap(a: Box, b: Box) -> float:
    """Largest axis gap between two boxes (0 when they touch or overlap)."""
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return max(dx, dy)


def _distance(a: Box, b: Box) -> float:
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return (dx * dx + dy * dy) ** 0.5


def _overlap_area(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _expand(a: Box, m: float) -> Box:
    return (a[0] - m, a[1] - m, a[2] + m, a[3] + m)


def _centre_in(a: Box, b: Box) -> bool:
    cx, cy = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    return b[0] <= cx <= b[2] and b[1] <= cy <= b[3]


def _round_box(b) -> Box:
    return tuple(round(float(v), 2) for v in b)  # type: ignore[return-value]


def _width(b: Box) -> float:
    return b[2] - b[0]


def _height(b: Box) -> float:
    return b[3] - b[1]


# --- page text -------------------------------------------------------------------------------------

@dataclass
class Line:
    text: str
    bbox: Box
    size: float
    spans: list[tuple[str, Box]]


@dataclass
class TextBlock:
    lines: list[Line]
    bbox: Box

    @property
    def text(self) -> str:
        return join_lines([ln.text for ln in self.lines])

    @property
    def is_paragraph(self) -> bool:
        """Running text (several stacked lines, many characters), as opposed to tick labels or a legend."""
        baselines = {round(ln.bbox[3]) for ln in self.lines}
        return len(baselines) >= 2 and sum(len(ln.text) for ln in self.lines) >= 100


def join_lines(lines: list[str]) -> str:
    """Lines of a paragraph as one string; a word hyphenated across a line break is joined again."""
    out = ""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if out.endswith("-") and len(out) > 1 and out[-2].isalpha() and line[:1].islower():
            out = out[:-1] + line
        else:
            out = f"{out} {line}" if out else line
    return out


def page_blocks(text_dict: dict) -> list[TextBlock]:
    """Text blocks of a ``get_text("dict")`` result, as light records."""
    blocks: list[TextBlock] = []
    for b in text_dict.get("blocks", []):
        if b.get("type", 0) != 0:
            continue
        lines: list[Line] = []
        for ln in b.get("lines", []):
            spans = [(s["text"], tuple(s["bbox"])) for s in ln.get("spans", []) if s["text"].strip()]
            if not spans:
                continue
            text = "".join(s["text"] for s in ln["spans"])
            size = max(s["size"] for s in ln["spans"])
            lines.append(Line(text=text, bbox=tuple(ln["bbox"]), size=size, spans=spans))
        if lines:
            box = lines[0].bbox
            for ln in lines[1:]:
                box = _union(box, ln.bbox)
            blocks.append(TextBlock(lines=lines, bbox=box))
    return blocks


@dataclass
class Caption:
    number: int
    text: str  # full caption text, label included
    bbox: Box
    block: int  # index of the first block
    blocks: list[int] = field(default_factory=list)  # all blocks that make up the caption
    label_lines: list[Line] = field(default_factory=list)  # short lines in the caption's block before it


def find_captions(blocks: list[TextBlock]) -> list[Caption]:
    """Caption candidates: blocks that start with a figure label (``captions.parse_caption_start``).

    A block whose first lines are short labels ("(a)", "(b)") that MuPDF glued to the caption still counts;
    a caption block split by MuPDF continues into the block right below it (same size, touching).
    """
    caps: list[Caption] = []
    used: set[int] = set()
    for i, blk in enumerate(blocks):
        if i in used:
            continue
        start = None
        for j, line in enumerate(blk.lines):
            if parse_caption_start(join_lines([ln.text for ln in blk.lines[j:]])):
                start = j
                break
            if len(line.text.strip()) > 4:
                break
        if start is None:
            continue
        lines = blk.lines[start:]
        box = lines[0].bbox
        for ln in lines[1:]:
            box = _union(box, ln.bbox)
        members = [i]
        size = lines[0].size
        k = i + 1
        while k < len(blocks):  # continuation blocks right below
            nxt = blocks[k]
            gap = nxt.bbox[1] - box[3]
            if (-2 <= gap <= 0.5 * size and abs(nxt.lines[0].size - size) < 0.6
                    and min(box[2], nxt.bbox[2]) - max(box[0], nxt.bbox[0]) > 0.5 * _width(nxt.bbox)
                    and not parse_caption_start(nxt.text)):
                lines = lines + nxt.lines
                box = _union(box, nxt.bbox)
                members.append(k)
                used.add(k)
                k += 1
            else:
                break
        text = join_lines([ln.text for ln in lines])
        parsed = parse_caption_start(text)
        if parsed:
            caps.append(Caption(number=parsed[0], text=" ".join(text.split()), bbox=box, block=i,
                                blocks=members, label_lines=blk.lines[:start]))
    return caps


# --- graphics --------------------------------------------------------------------------------------

@dataclass
class Graphic:
    bbox: Box
    kind: str  # "image" (xref), "inline" (inline image, no xref), "drawing"
    xref: int = 0
    width: int = 0  # declared pixels
    height: int = 0
    info: dict = field(default_factory=dict)


def match_image_xrefs(doc: pymupdf.Document, infos: list[dict], images: list[tuple]) -> list[int]:
    """The xref of each placed image (``get_image_info()`` entries), 0 for inline images, without decoding.

    Candidates share the declared width, height and bits per component; among several, the best has the
    same colour-space family ("DeviceRGB", "ICCBased", "Indexed" ...), the same soft-mask presence and the
    nearest compressed length (MuPDF reports the stream length plus a small constant), then list order.
    """
    by_dims: dict[tuple[int, int, int], list[tuple]] = {}
    for item in images:
        by_dims.setdefault((item[2], item[3], item[4]), []).append(item)
    lengths: dict[int, int] = {}
    out: list[int] = []
    for info in infos:
        cands = by_dims.get((info["width"], info["height"], info["bpc"]), [])
        if len(cands) <= 1:
            out.append(cands[0][0] if cands else 0)
            continue
        family = str(info.get("cs-name", "")).split("(")[0]
        best = None
        for order, item in enumerate(cands):
            xref, smask, cs = item[0], item[1], item[5]
            if xref not in lengths:
                lengths[xref] = _stream_length(doc, xref)
            key = (cs != family, bool(smask) != bool(info.get("has-mask")),
                   abs(info.get("size", 0) - lengths[xref]), order)
            if best is None or key < best[0]:
                best = (key, xref)
        out.append(best[1])
    return out


def _stream_length(doc: pymupdf.Document, xref: int) -> int:
    kind, value = doc.xref_get_key(xref, "Length")
    if kind == "int":
        return int(value)
    try:
        return len(doc.xref_stream_raw(xref))
    except Exception:  # noqa: BLE001 - a broken stream just loses the tie-break
        return 0


def drawing_regions(page: pymupdf.Page) -> list[Box]:
    """Regions of vector drawing on the page: path boxes clustered by proximity.

    Page-wide hairlines and rules, page-sized background fills and regions smaller than MIN_BBOX_PT are
    dropped (they are layout, not figures).
    """
    pw, ph = page.rect.width, page.rect.height
    rects: list[Box] = []
    for kind, r in page.get_bboxlog():
        if kind not in ("fill-path", "stroke-path", "fill-shade", "fill-imgmask"):
            continue
        box = (max(r[0], 0.0), max(r[1], 0.0), min(r[2], pw), min(r[3], ph))
        w, h = box[2] - box[0], box[3] - box[1]
        if w <= 0 and h <= 0:
            continue
        if (min(w, h) < 1.5 and (w > 0.45 * pw or h > 0.45 * ph)) or w * h > 0.6 * pw * ph:
            continue
        rects.append(box)
    regions = _cluster(rects, DRAWING_GAP, barriers=[])
    return [r for r in regions if _width(r) >= MIN_BBOX_PT and _height(r) >= MIN_BBOX_PT]


def _cluster(boxes: list[Box], gap: float, barriers: list[Box]) -> list[Box]:
    """Union boxes closer than ``gap`` unless their union would cover a barrier box (a caption)."""
    groups = _cluster_groups(boxes, gap, barriers)
    out = []
    for g in groups:
        box = boxes[g[0]]
        for i in g[1:]:
            box = _union(box, boxes[i])
        out.append(box)
    return out


def _cluster_groups(boxes: list[Box], gap: float, barriers: list[Box]) -> list[list[int]]:
    parent = list(range(len(boxes)))
    box_of = {i: boxes[i] for i in range(len(boxes))}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0]))
    changed = True
    while changed:  # repeat: a merged box may now reach a box it did not reach before
        changed = False
        for a_pos, a in enumerate(order):
            for b in order[a_pos + 1:]:
                ra, rb = find(a), find(b)
                if ra == rb or _gap(box_of[ra], box_of[rb]) > gap:
                    continue
                merged = _union(box_of[ra], box_of[rb])
                if any(_overlap_area(merged, bar) > 0.25 * (_width(bar) * _height(bar)) for bar in barriers):
                    continue
                parent[rb] = ra
                box_of[ra] = merged
                changed = True
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: (min(boxes[i][1] for i in g), min(boxes[i][0] for i in g)))


# --- one page: graphics + captions -> figures -------------------------------------------------------

@dataclass
class Cluster:
    members: list[Graphic]
    bbox: Box
    caption: Caption | None = None


def match_captions(captions: list[Caption], clusters: list[Cluster]) -> None:
    """Give each caption the cluster directly above it (or below, or beside), one-to-one, nearest first."""
    pairs = []
    for ci, cap in enumerate(captions):
        for ki, cl in enumerate(clusters):
            b, c = cl.bbox, cap.bbox
            hov = min(b[2], c[2]) - max(b[0], c[0])
            vov = min(b[3], c[3]) - max(b[1], c[1])
            score = None
            if hov >= 0.3 * min(_width(b), _width(c)):
                if b[3] <= c[1] + 4 and c[1] - b[3] <= CAPTION_GAP:  # figure above the caption
                    score = max(0.0, c[1] - b[3])
                elif b[1] >= c[3] - 4 and b[1] - c[3] <= CAPTION_GAP:  # figure below the caption
                    score = max(0.0, b[1] - c[3]) + BELOW_PENALTY
            elif vov >= 0.5 * min(_height(b), _height(c)):  # caption beside the figure
                hgap = max(c[0] - b[2], b[0] - c[2])
                if 0 <= hgap <= 30:
                    score = hgap + 2 * BELOW_PENALTY
            if score is not None:
                pairs.append((score, ci, ki))
    taken_c: set[int] = set()
    taken_k: set[int] = set()
    for _, ci, ki in sorted(pairs):
        if ci in taken_c or ki in taken_k:
            continue
        clusters[ki].caption = captions[ci]
        taken_c.add(ci)
        taken_k.add(ki)


def merge_uncaptioned(clusters: list[Cluster], captions: list[Caption], body: list[Box]) -> list[Cluster]:
    """Fold uncaptioned clusters into the nearest captioned one when nothing (caption, body text) lies between.

    This joins the rows of a panel grid with wide gutters, which the gap rule alone keeps apart.
    """
    changed = True
    while changed:
        changed = False
        for u in [c for c in clusters if c.caption is None]:
            best = None
            for c in clusters:
                if c.caption is None or c is u:
                    continue
                d = _gap(u.bbox, c.bbox)
                if d > MERGE_GAP:
                    continue
                merged = _union(u.bbox, c.bbox)
                blocked = any(_overlap_area(merged, cap.bbox) > 0 for cap in captions)
                blocked = blocked or any(_overlap_area(merged, t) > 0.3 * _width(t) * _height(t)
                                         and not _overlap_area(t, u.bbox) and not _overlap_area(t, c.bbox)
                                         for t in body)
                if not blocked and (best is None or d < best[0]):
                    best = (d, c)
            if best:
                target = best[1]
                target.members += u.members
                target.bbox = _union(target.bbox, u.bbox)
                clusters.remove(u)
                changed = True
                break
    return clusters


def assemble_figures(graphics: list[Graphic], captions: list[Caption], body: list[Box]) -> list[Cluster]:
    """Graphics -> clusters (close together, not across a caption) -> captions matched -> grids merged."""
    groups = _cluster_groups([g.bbox for g in graphics], GRAPHIC_GAP, [c.bbox for c in captions])
    clusters = []
    for g in groups:
        members = [graphics[i] for i in g]
        box = members[0].bbox
        for m in members[1:]:
            box = _union(box, m.bbox)
        clusters.append(Cluster(members=members, bbox=box))
    match_captions(captions, clusters)
    clusters = merge_uncaptioned(clusters, captions, body)
    return clusters


# --- saving images ---------------------------------------------------------------------------------

def _pil_from_pixmap(pix: pymupdf.Pixmap) -> Image.Image:
    """An 8-bit RGB or L Pillow image from any MuPDF pixmap (CMYK, Lab, DeviceN, alpha, stencil masks)."""
    if pix.colorspace is None:  # a stencil mask: alpha only, painted where alpha is set
        img = Image.frombytes("L", (pix.width, pix.height), pix.samples, "raw", "L", pix.stride)
        return Image.eval(img, lambda v: 255 - v)
    name = pix.colorspace.name.lower()
    base_n = pix.n - pix.alpha
    is_rgb = base_n == 3 and "rgb" in name
    is_grey = base_n == 1 and "gray" in name
    if not (is_rgb or is_grey):
        pix = pymupdf.Pixmap(pymupdf.csRGB, pix)
        base_n = 3
    if pix.alpha:
        pix = pymupdf.Pixmap(pix, 0)  # drop alpha
    mode = "RGB" if base_n == 3 else "L"
    return Image.frombytes(mode, (pix.width, pix.height), pix.samples, "raw", mode, pix.stride)


def _jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


_FILTER_FORMAT = {"/DCTDecode": "jpeg", "/JPXDecode": "jpx", "/FlateDecode": "png", "/JBIG2Decode": "jbig2",
                  "/CCITTFaxDecode": "ccitt", "/LZWDecode": "lzw", "/RunLengthDecode": "rle"}


@dataclass
class SavedImage:
    image: str
    width: int
    height: int
    source_format: str


class ImageWriter:
    """Writes each embedded image of one paper at most once (an xref shown on several pages is one file)."""

    def __init__(self, doc: pymupdf.Document, folder: Path, rel_folder: str, config: BuildConfig):
        self.doc, self.folder, self.rel_folder, self.config = doc, folder, rel_folder, config
        self.saved: dict[int, SavedImage | str] = {}  # xref -> saved image, or the reason it was refused
        self.decoded = 0

    def embedded(self, g: Graphic) -> SavedImage | str:
        if g.xref not in self.saved:
            self.saved[g.xref] = self._save_embedded(g)
        return self.saved[g.xref]

    def _save_embedded(self, g: Graphic) -> SavedImage | str:
        if g.width * g.height > self.config.max_image_pixels:
            return "decompression_bomb"
        kind, filt = self.doc.xref_get_key(g.xref, "Filter")
        cs_name = g.info.get("cs-name", "")
        keep = (kind == "name" and filt == "/DCTDecode" and g.info.get("bpc") == 8
                and g.info.get("colorspace") in (1, 3) and ("RGB" in cs_name or "Gray" in cs_name))
        name = f"img-x{g.xref}.jpg"
        if keep:  # baseline JPEG in RGB/grey: the source bytes are the file (no decode, no re-encode)
            data = self.doc.xref_stream_raw(g.xref)
            write_bytes_atomic(self.folder / name, data, durable=False)
            return SavedImage(f"{self.rel_folder}/{name}", g.width, g.height, "jpeg")
        fmt = _FILTER_FORMAT.get(filt, "raw") if kind == "name" else (
            _FILTER_FORMAT.get(filt.strip("[] ").split()[-1], "raw") if kind == "array" else "raw")
        try:
            pix = pymupdf.Pixmap(self.doc, g.xref)
            self.decoded += 1
            img = _pil_from_pixmap(pix)
            del pix
        except Exception:  # noqa: BLE001 - MuPDF raises plain RuntimeErrors for broken streams
            return "undecodable_image"
        write_bytes_atomic(self.folder / name, _jpeg_bytes(img), durable=False)
        return SavedImage(f"{self.rel_folder}/{name}", img.width, img.height, fmt)

    def rendered(self, page: pymupdf.Page, bbox: Box, stem: str) -> SavedImage | str:
        try:
            pix = page.get_pixmap(clip=pymupdf.Rect(bbox), dpi=self.config.render_dpi, alpha=False)
        except Exception:  # noqa: BLE001
            return "render_failed"
        if pix.width * pix.height <= TINY_RENDER_PX:
            name, data = f"{stem}.png", pix.tobytes("png")
        else:
            name, data = f"{stem}.jpg", _jpeg_bytes(_pil_from_pixmap(pix))
        write_bytes_atomic(self.folder / name, data, durable=False)
        return SavedImage(f"{self.rel_folder}/{name}", pix.width, pix.height, "rendered")


# --- title, DOI --------------------------------------------------------------------------------------

def find_title(first_page_blocks: list[TextBlock], metadata: dict | None) -> str | None:
    """The largest-font text in the top half of page 1 (lines of that size joined), else the metadata title."""
    lines = [ln for b in first_page_blocks for ln in b.lines if len(ln.text.strip()) >= 3]
    if lines:
        page_bottom = max(ln.bbox[3] for ln in lines)
        top = [ln for ln in lines if ln.bbox[1] < 0.5 * page_bottom] or lines
        size = max(ln.size for ln in top)
        title_lines = [ln for ln in top if abs(ln.size - size) < 0.5]
        title = " ".join(join_lines([ln.text for ln in title_lines]).split())
        if len(title) >= 3:
            return title
    meta = (metadata or {}).get("title") or ""
    return meta.strip() or None


def clean_doi(doi: str) -> str:
    """Strip trailing punctuation and unbalanced closing brackets from a DOI found in running text."""
    doi = doi.rstrip(".,;:'\"")
    while doi and doi[-1] in ")]}":
        opener = {")": "(", "]": "[", "}": "{"}[doi[-1]]
        if doi.count(opener) >= doi.count(doi[-1]):
            break
        doi = doi[:-1].rstrip(".,;:'\"")
    return doi


def find_doi(texts: list[str], metadata: dict | None) -> str | None:
    """The first DOI in the metadata (subject, keywords, title), else in the given page texts (pages 1-2)."""
    meta = metadata or {}
    for text in [meta.get("subject") or "", meta.get("keywords") or "", *texts]:
        m = _DOI.search(text)
        if m:
            return clean_doi(m.group(1))
    return None


# --- one paper -------------------------------------------------------------------------------------

@dataclass
class PageData:
    number: int  # 1-based
    blocks: list[TextBlock]
    graphics: list[Graphic]


_DO_OPERATOR = re.compile(rb"/([^\s/\[\]<>(){}%]+)\s+Do\b")


def placed_xrefs(page: pymupdf.Page, infos: list[dict], images: list[tuple]) -> list[int] | None:
    """The xref of each placed image, exactly: the page's own ``/Name Do`` operators in content order.

    get_image_info() lists placements in content order, so the n-th image Do is the n-th entry. Returns
    None when that pairing cannot be trusted (images inside form XObjects, inline images, a count or a
    declared size that disagrees): the caller then asks MuPDF, which is exact but decodes the images.
    """
    names = {item[7]: item for item in images if item[9] == 0}  # referencer 0: the page's own resources
    if len(names) != len(images):
        return None
    try:
        used = [n.decode("latin-1") for n in _DO_OPERATOR.findall(page.read_contents())]
    except Exception:  # noqa: BLE001 - unreadable content: let MuPDF decide
        return None
    order = [names[n] for n in used if n in names]
    if len(order) != len(infos):
        return None
    for item, info in zip(order, infos):
        if (item[2], item[3], item[4]) != (info["width"], info["height"], info["bpc"]):
            return None
    return [item[0] for item in order]


def _page_graphics(doc: pymupdf.Document, page: pymupdf.Page, page_no: int) -> list[Graphic]:
    infos = page.get_image_info()
    images = page.get_images(full=True)
    xrefs = placed_xrefs(page, infos, images)
    if xrefs is None:
        dims = [(item[2], item[3], item[4]) for item in images]
        if len(set(dims)) == len(dims):  # no two images look alike: their declared properties decide
            xrefs = match_image_xrefs(doc, infos, images)
        else:  # exact, at the price of decoding the page's images
            infos = page.get_image_info(xrefs=True)
            xrefs = [int(i.get("xref", 0)) for i in infos]
    rect = page.rect
    out = []
    for info, xref in zip(infos, xrefs):
        b = info["bbox"]
        box = (max(b[0], rect.x0), max(b[1], rect.y0), min(b[2], rect.x1), min(b[3], rect.y1))
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            continue
        out.append(Graphic(bbox=box, kind="image" if xref else "inline", xref=xref,
                           width=int(info["width"]), height=int(info["height"]), info=info))
    return out


def _repeated_keys(doc: pymupdf.Document, pages: list[PageData], page_h: dict[int, float]) -> set:
    """Image keys (xref, or raw-stream digest) placed in the header/footer band on >= REPEAT_PAGES pages."""
    seen: dict[object, set[int]] = {}
    for pd in pages:
        h = page_h[pd.number]
        for g in pd.graphics:
            cy = (g.bbox[1] + g.bbox[3]) / 2
            if g.kind != "image" or BAND * h < cy < (1 - BAND) * h:
                continue
            seen.setdefault(("x", g.xref), set()).add(pd.number)
            try:
                digest = hashlib.md5(doc.xref_stream_raw(g.xref)).hexdigest()
            except Exception:  # noqa: BLE001, S112 - an unreadable stream is matched by xref only
                continue
            seen.setdefault(("d", digest), set()).add(pd.number)
    return {k for k, v in seen.items() if len(v) >= REPEAT_PAGES}


def _is_repeated(doc: pymupdf.Document, g: Graphic, keys: set, h: float) -> bool:
    if g.kind != "image" or not keys:
        return False
    cy = (g.bbox[1] + g.bbox[3]) / 2
    if BAND * h < cy < (1 - BAND) * h:
        return False
    if ("x", g.xref) in keys:
        return True
    try:
        return ("d", hashlib.md5(doc.xref_stream_raw(g.xref)).hexdigest()) in keys
    except Exception:  # noqa: BLE001
        return False


def _panel_letters(blocks: list[TextBlock], captions: list[Caption], bbox: Box) -> list[tuple[str, Box]]:
    """Printed panel letters ("(a)", "a", "B") inside or just outside a figure box, lower-cased, unique."""
    caption_blocks = {i for c in captions for i in c.blocks}
    area = _expand(bbox, LABEL_MARGIN)
    found: list[tuple[str, Box]] = []
    for i, blk in enumerate(blocks):
        if i in caption_blocks and not any(c.block == i and c.label_lines for c in captions):
            continue
        for ln in blk.lines:
            for text, sbox in ln.spans:
                for token in text.split():
                    m = _PANEL_LABEL.match(token)
                    if m and _centre_in(sbox, area) and (len(text.split()) == 1):
                        found.append((m.group(1).lower(), _round_box(sbox)))
    found.sort(key=lambda x: (x[0], x[1][1], x[1][0]))
    unique: dict[str, Box] = {}
    for letter, box in found:
        unique.setdefault(letter, box)
    return sorted(unique.items())


def _label_parts(parts: list[FigurePart], letters: list[tuple[str, Box]]) -> None:
    """Give each part the nearest printed letter (one letter per part, within LABEL_MARGIN + a little)."""
    pairs = sorted((_distance(lb, p.bbox), li, pi) for li, (_, lb) in enumerate(letters)
                   for pi, p in enumerate(parts))
    used_l: set[int] = set()
    used_p: set[int] = set()
    for d, li, pi in pairs:
        if d > LABEL_MARGIN + 6 or li in used_l or pi in used_p:
            continue
        parts[pi].label = letters[li][0]
        used_l.add(li)
        used_p.add(pi)


def _in_figure_text_box(blocks: list[TextBlock], captions: list[Caption], region: Box) -> Box:
    """Grow a vector region by the short text lines around it (tick labels, axis titles, legends)."""
    caption_blocks = {i for c in captions for i in c.blocks}
    area = _expand(region, 20)
    box = region
    for i, blk in enumerate(blocks):
        if i in caption_blocks or blk.is_paragraph:
            continue
        for ln in blk.lines:
            if ln.bbox[0] >= area[0] and ln.bbox[2] <= area[2] and ln.bbox[1] >= area[1] and ln.bbox[3] <= area[3]:
                box = _union(box, ln.bbox)
    return box


@dataclass
class MineOutcome:
    """What one worker returns for one PDF (problems already in report form)."""

    problems: list[Problem]
    counts: dict[str, int]


def mine_paper(pdf: Path, source_rel: str, paper_id: str, out: Path, config: BuildConfig) -> MineOutcome:
    """Mine one PDF into ``out/stages/mine/<paper_id>/`` (images first, paper.json last)."""
    paths = StagePaths(out)
    folder = paths.mine / paper_id
    rel_folder = f"stages/mine/{paper_id}"
    try:
        doc = pymupdf.open(pdf, filetype="pdf")
    except Exception as exc:  # noqa: BLE001 - MuPDF raises FileDataError / RuntimeError for broken files
        return MineOutcome([_problem(source_rel, "truncated_or_corrupt", f"cannot open: {exc}", paper_id, "failed")],
                           {"failed": 1})
    with doc:
        if doc.needs_pass:
            return MineOutcome([_problem(source_rel, "encrypted", "password-protected PDF", paper_id)],
                               {"failed": 1})
        if doc.page_count == 0:
            return MineOutcome([_problem(source_rel, "truncated_or_corrupt", "no readable pages", paper_id,
                                         "failed")], {"failed": 1})
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".*.tmp"):  # left behind by a killed run
            stale.unlink(missing_ok=True)
        problems = repair_problems(doc, source_rel, paper_id)
        record, page_errors = _mine_document(doc, source_rel, paper_id, folder, rel_folder, config)
        if page_errors:
            problems.append(_problem(source_rel, "truncated_or_corrupt",
                                     f"unreadable page(s) {', '.join(map(str, page_errors))}; the rest was mined",
                                     paper_id))
        record.problems = problems  # kept in the record: a resumed run reports the same lines
        write_model_atomic(folder / "paper.json", record, durable=False)  # unreadable -> mined again
    problems = problems + paper_problems(record)
    return MineOutcome(problems, {"mined": 1, **_record_counts(record)})


def _mine_document(doc: pymupdf.Document, source_rel: str, paper_id: str, folder: Path, rel_folder: str,
                   config: BuildConfig) -> tuple[PaperRecord, list[int]]:
    pages: list[PageData] = []
    page_objs: dict[int, pymupdf.Page] = {}
    page_h: dict[int, float] = {}
    errors: list[int] = []
    for i in range(doc.page_count):
        try:
            page = doc.load_page(i)
            blocks = page_blocks(page.get_text("dict", flags=TEXT_FLAGS))
            graphics = _page_graphics(doc, page, i + 1)
        except Exception:  # noqa: BLE001 - a damaged page: keep the others
            errors.append(i + 1)
            continue
        pages.append(PageData(i + 1, blocks, graphics))
        page_objs[i + 1] = page
        page_h[i + 1] = page.rect.height
    repeated = _repeated_keys(doc, pages, page_h)
    writer = ImageWriter(doc, folder, rel_folder, config)
    figures: list[FigureRecord] = []
    skipped: list[SkippedGraphic] = []
    excerpts: list[Excerpt] = []
    for pd in pages:
        page = page_objs[pd.number]
        figs, skips, body_text = _mine_page(doc, page, pd, paper_id, writer, repeated, config)
        figures += figs
        skipped += skips
        for cit, text in cite_excerpts(body_text, config.excerpt_chars):
            excerpts.append(Excerpt(figure_number=cit.figure_number, panels=cit.panels, text=text, page=pd.number))
    first = pages[0].blocks if pages and pages[0].number == 1 else []
    meta = doc.metadata or {}
    doi_texts = [join_lines([ln.text for b in pd.blocks for ln in b.lines]) for pd in pages if pd.number <= 2]
    record = PaperRecord(paper_id=paper_id, source_pdf=source_rel, title=find_title(first, meta),
                         doi=find_doi(doi_texts, meta), n_pages=doc.page_count, figures=figures,
                         excerpts=excerpts, skipped=skipped)
    return record, errors


def _mine_page(doc: pymupdf.Document, page: pymupdf.Page, pd: PageData, paper_id: str, writer: ImageWriter,
               repeated: set, config: BuildConfig) -> tuple[list[FigureRecord], list[SkippedGraphic], str]:
    skipped: list[SkippedGraphic] = []
    h = page.rect.height
    usable: list[Graphic] = []
    for g in pd.graphics:
        if (g.width < config.min_figure_px or g.height < config.min_figure_px
                or _width(g.bbox) < MIN_BBOX_PT or _height(g.bbox) < MIN_BBOX_PT):
            skipped.append(SkippedGraphic(page=pd.number, bbox=_round_box(g.bbox), reason="too_small"))
        elif _is_repeated(doc, g, repeated, h):
            skipped.append(SkippedGraphic(page=pd.number, bbox=_round_box(g.bbox), reason="repeated_publisher_image"))
        else:
            usable.append(g)
    captions = find_captions(pd.blocks)
    caption_blocks = {i for c in captions for i in c.blocks}
    body_boxes = [b.bbox for i, b in enumerate(pd.blocks) if i not in caption_blocks and b.is_paragraph]
    clusters = assemble_figures(usable, captions, body_boxes) if usable else []
    matched = {id(c.caption) for c in clusters if c.caption}
    if any(id(c) not in matched for c in captions):  # a caption no embedded image explains: look at drawings
        regions = [r for r in drawing_regions(page)  # a box around a text paragraph is not a figure
                   if not any(_overlap_area(r, b.bbox) > 0.5 * _width(b.bbox) * _height(b.bbox)
                              for i, b in enumerate(pd.blocks) if i not in caption_blocks and b.is_paragraph)]
        drawings = [Graphic(bbox=r, kind="drawing") for r in regions]
        clusters = assemble_figures(usable + drawings, captions, body_boxes)

    figures: list[FigureRecord] = []
    clusters.sort(key=lambda c: (round(c.bbox[1], 1), round(c.bbox[0], 1)))
    for cl in clusters:
        fig, skips = _make_figure(page, pd, cl, captions, paper_id, len(figures) + 1, writer)
        skipped += skips
        if fig:
            figures.append(fig)

    figure_boxes = [_expand(f.bbox, 2) for f in figures]
    body_parts = []
    for i, blk in enumerate(pd.blocks):
        if i in caption_blocks:
            continue
        lines = [ln.text for ln in blk.lines if not any(_centre_in(ln.bbox, fb) for fb in figure_boxes)]
        if lines:
            body_parts.append(join_lines(lines))
    return figures, skipped, " ".join(body_parts)


def _make_figure(page: pymupdf.Page, pd: PageData, cl: Cluster, captions: list[Caption], paper_id: str,
                 index: int, writer: ImageWriter) -> tuple[FigureRecord | None, list[SkippedGraphic]]:
    skipped: list[SkippedGraphic] = []
    figure_id = f"{paper_id}-p{pd.number}-f{index}"
    embedded = sorted([g for g in cl.members if g.kind == "image"], key=lambda g: (g.bbox[1], g.bbox[0]))
    others = [g for g in cl.members if g.kind != "image"]
    if not embedded and cl.caption is None:
        if others:
            skipped.append(SkippedGraphic(page=pd.number, bbox=_round_box(cl.bbox), reason="uncaptioned_vector"))
        return None, skipped
    parts: list[FigurePart] = []
    bbox = cl.bbox
    if embedded:
        for g in embedded:
            saved = writer.embedded(g)
            if isinstance(saved, str):
                skipped.append(SkippedGraphic(page=pd.number, bbox=_round_box(g.bbox), reason=saved))
                continue
            parts.append(FigurePart(image=saved.image, width=saved.width, height=saved.height,
                                    bbox=_round_box(g.bbox), origin="embedded", source_format=saved.source_format))
        kind = "raster" if len(parts) == 1 else "multi_raster"
    else:
        bbox = _in_figure_text_box(pd.blocks, captions, cl.bbox)
        bbox = (max(bbox[0], 0), max(bbox[1], 0), min(bbox[2], page.rect.width), min(bbox[3], page.rect.height))
        saved = writer.rendered(page, bbox, f"p{pd.number}-f{index}")
        if isinstance(saved, str):
            skipped.append(SkippedGraphic(page=pd.number, bbox=_round_box(bbox), reason=saved))
        else:
            parts.append(FigurePart(image=saved.image, width=saved.width, height=saved.height,
                                    bbox=_round_box(bbox), origin="rendered", source_format="rendered"))
        kind = "raster" if any(g.kind == "inline" for g in others) else "vector"
    if not parts:
        return None, skipped
    letters = _panel_letters(pd.blocks, captions, bbox)
    if len(parts) > 1 or letters:
        _label_parts(parts, letters)
    caption = cl.caption
    return FigureRecord(figure_id=figure_id, paper_id=paper_id, page=pd.number, bbox=_round_box(bbox), kind=kind,
                        number=caption.number if caption else None, caption=caption.text if caption else "",
                        parts=parts, panel_letters=letters), skipped


# --- problems and counts -----------------------------------------------------------------------------

PER_IMAGE_REASONS = ("decompression_bomb", "undecodable_image", "render_failed")


def _problem(file: str, reason: str, detail: str, paper_id: str | None = None,
             severity: str = "skipped") -> Problem:
    return Problem(file=file, stage=STAGE, reason=reason, detail=detail, paper_id=paper_id, severity=severity)


def repair_problems(doc: pymupdf.Document, source_rel: str, paper_id: str) -> list[Problem]:
    """A PDF MuPDF had to repair on opening (truncated, broken xref table) is reported even when it mined."""
    if doc.is_repaired:
        return [_problem(source_rel, "truncated_or_corrupt",
                         "damaged file (MuPDF rebuilt its cross-reference table); mined what could be read", paper_id)]
    return []


def paper_problems(record: PaperRecord) -> list[Problem]:
    """Report lines that follow from a paper record alone (so a resumed paper reports the same lines)."""
    out = []
    for s in record.skipped:
        if s.reason in PER_IMAGE_REASONS:
            what = {"decompression_bomb": "declares more pixels than --max-image-pixels; never decoded",
                    "undecodable_image": "could not be decoded", "render_failed": "region could not be rendered"}
            out.append(_problem(record.source_pdf, s.reason,
                                f"page {s.page}, image at {tuple(s.bbox)}: {what[s.reason]}; the rest of the paper "
                                "was kept", record.paper_id))
    if not record.figures:
        out.append(_problem(record.source_pdf, "no_figures", "no figure found; the paper record is still written",
                            record.paper_id))
    return out


def _record_counts(record: PaperRecord) -> dict[str, int]:
    return {"figures": len(record.figures), "parts": sum(len(f.parts) for f in record.figures),
            "captioned": sum(1 for f in record.figures if f.caption), "excerpts": len(record.excerpts)}


# --- the stage -----------------------------------------------------------------------------------------

def paper_id_of(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


_OTHER_FORMATS = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"PK\x03\x04", b"%!PS", b"II*\x00", b"MM\x00*", b"BM",
                  b"RIFF", b"\x00\x00\x00\x0cjP", b"{\\rtf", b"\xd0\xcf\x11\xe0")


def classify_non_pdf(head: bytes, name: str) -> tuple[str, str] | None:
    """None for a PDF (a %PDF- header in the first KiB, as MuPDF accepts); else (reason, detail).

    A file of another known format, or text, is "not_a_pdf"; unrecognisable bytes under a .pdf name are a
    damaged PDF ("truncated_or_corrupt").
    """
    if b"%PDF-" in head:
        return None
    if head.startswith(_OTHER_FORMATS):
        return "not_a_pdf", "another file format (by its first bytes)"
    try:
        head.decode("utf-8")
        is_text = True
    except UnicodeDecodeError:
        is_text = False
    if is_text or not name.lower().endswith(".pdf"):
        return "not_a_pdf", "no %PDF- header in the first 1 KiB"
    return "truncated_or_corrupt", "named .pdf but no %PDF- header and no known format: damaged file"


def _mine_task(args: tuple[str, str, str, str, BuildConfig]) -> MineOutcome:
    pdf, rel, paper_id, out, config = args
    shown = pymupdf.TOOLS.mupdf_display_errors(), pymupdf.TOOLS.mupdf_display_warnings()
    pymupdf.TOOLS.mupdf_display_errors(False)  # damaged files are reported as Problems, not stderr noise
    pymupdf.TOOLS.mupdf_display_warnings(False)
    try:
        return mine_paper(Path(pdf), rel, paper_id, Path(out), config)
    except Exception as exc:  # noqa: BLE001 - bad input must never stop the run
        return MineOutcome([_problem(rel, "mine_error", f"{type(exc).__name__}: {exc}", paper_id, "failed")],
                           {"failed": 1})
    finally:
        pymupdf.TOOLS.mupdf_display_errors(shown[0])
        pymupdf.TOOLS.mupdf_display_warnings(shown[1])


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Mine every PDF under ``config.papers`` (recursively, sorted); every other file becomes a Problem."""
    if config.papers is None:
        raise ValueError("mine: config.papers is not set (the build resolves the sample corpus before this stage)")
    root = Path(config.papers)
    files = sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    counts = {"files": len(files), "pdfs": 0, "mined": 0, "resumed": 0, "failed": 0, "figures": 0, "parts": 0,
              "captioned": 0, "excerpts": 0}
    slots: list[list[Problem]] = [[] for _ in files]
    tasks: list[tuple[int, tuple]] = []
    seen: dict[str, str] = {}
    for idx, f in enumerate(files):
        rel = f.relative_to(root).as_posix()
        try:
            if f.stat().st_size == 0:
                slots[idx].append(_problem(rel, "zero_bytes", "empty file"))
                continue
            with open(f, "rb") as fh:
                verdict = classify_non_pdf(fh.read(1024), f.name)
            if verdict:
                slots[idx].append(_problem(rel, *verdict, severity="failed" if verdict[0] != "not_a_pdf" else "skipped"))
                continue
            pid = paper_id_of(f)
        except OSError as exc:
            slots[idx].append(_problem(rel, "unreadable", str(exc), severity="failed"))
            continue
        counts["pdfs"] += 1
        if pid in seen:
            slots[idx].append(_problem(rel, "duplicate_pdf", f"same bytes as {seen[pid]}", pid))
            continue
        seen[pid] = rel
        done = paths.mine / pid / "paper.json"
        if done.exists():
            try:
                record = read_model(done, PaperRecord)
                counts["resumed"] += 1
                for k, v in _record_counts(record).items():
                    counts[k] += v
                slots[idx] += record.problems + paper_problems(record)
                continue
            except ValueError:
                pass  # unreadable record: mine again
        tasks.append((idx, (str(f), rel, pid, str(paths.out), config)))

    bar = tqdm(total=len(tasks), desc="mine", unit="pdf", disable=not progress)
    if config.workers == 1 or len(tasks) <= 1:
        outcomes = []
        for idx, args in tasks:
            outcomes.append((idx, _mine_task(args)))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=min(config.workers, len(tasks))) as pool:
            futures = {pool.submit(_mine_task, args): idx for idx, args in tasks}
            outcomes = []
            for fut in as_completed(futures):
                outcomes.append((futures[fut], fut.result()))
                bar.update()
    bar.close()
    for idx, outcome in sorted(outcomes, key=lambda x: x[0]):
        slots[idx] += outcome.problems
        for k, v in outcome.counts.items():
            counts[k] = counts.get(k, 0) + v
    return StageResult(stage=STAGE, counts=counts, problems=[p for slot in slots for p in slot])


# --- the speed floor ----------------------------------------------------------------------------------

def floor_pass(pdf: Path) -> int:
    """The bare minimum any miner pays: open, text layout per page, decode every embedded image once.

    Uses the same text flags as the miner (text only). Returns the number of images decoded.
    """
    n = 0
    seen: set[int] = set()
    with pymupdf.open(pdf) as doc:
        for page in doc:
            page.get_text("dict", flags=TEXT_FLAGS)
            for item in page.get_images(full=True):
                xref = item[0]
                if xref in seen:
                    continue
                seen.add(xref)
                try:
                    pymupdf.Pixmap(doc, xref)
                except Exception:  # noqa: BLE001, S112 - e.g. a decompression bomb MuPDF refuses
                    continue
                n += 1
    return n
