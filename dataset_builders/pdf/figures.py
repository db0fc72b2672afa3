"""Figures on one page: vector-drawing regions, clustering of graphics, caption matching, grid merging,
the text around a vector figure and the printed panel letters of a figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pymupdf

from dataset_builders.pdf.geometry import (
    axis_gap,
    box_height,
    box_width,
    centre_in,
    distance,
    expand,
    overlap_area,
    round_box,
    union,
)
from dataset_builders.pdf.images import Graphic
from dataset_builders.pdf.proximity import proximity_groups
from dataset_builders.pdf.captions import split_panel_captions
from dataset_builders.pdf.text import Caption, TextBlock
from dataset_builders.pdf.tiling import grid_groups, tiles_grid
from dataset_builders.records import Box, FigurePart
from dataset_builders.union_find import UnionFind

MIN_BBOX_PT = 40.0  # graphics smaller than this on the page (either side) are icons, bullets, logos
GRAPHIC_GAP = 12.0  # graphics closer than this (pt) belong to the same figure
MERGE_GAP = 30.0  # an uncaptioned cluster this close to a captioned figure joins it (wide-gutter grids)
FAR_MERGE_GAP = 90.0  # ... or this close, when both are pictures and it sits above the caption, within its width
CAPTION_GAP = 50.0  # the farthest a caption sits from its figure (pt)
BELOW_PENALTY = 6.0  # prefer the figure above a caption over the one below it
# The farthest a side caption sits from its figure's drawn paths (pt): Springer books set the caption in the
# outer margin column and the chart's axis labels (text, not in the region) take ~25 pt more: 45-55 pt there.
SIDE_GAP = 60.0
DRAWING_GAP = 8.0  # drawing paths closer than this form one region
LABEL_MARGIN = 14.0  # panel letters / axis labels may sit this far outside a figure
LETTER_SKIP = 3  # printed panel letters past a gap of more letters than this in the run are not panel letters
_PANEL_LABEL = re.compile(r"^\(?([A-La-l])\)?[.:]?$")
# a sub-caption under one panel, "(a) Original SEM image": a parenthesised letter opening a short span
_SUB_CAPTION = re.compile(r"^\(([a-l])\)\s+\S")
SUB_CAPTION_WORDS = 6


def drawing_regions(page: pymupdf.Page, captions: list[Box] | tuple = ()) -> list[Box]:
    """Regions of vector drawing on the page: path boxes clustered by proximity.

    Page-wide hairlines and rules, page-sized background fills, paths that enclose a caption box (the
    background or frame of a figure float drawn behind the figure *and* its caption: Springer books paint
    one behind a chart and its side caption, which would put the caption inside the figure region) and
    regions smaller than MIN_BBOX_PT are dropped (they are layout, not figures).
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
        if any(_encloses(box, c) for c in captions):
            continue
        rects.append(box)
    regions = _cluster(rects, DRAWING_GAP, barriers=[])
    return [r for r in regions if box_width(r) >= MIN_BBOX_PT and box_height(r) >= MIN_BBOX_PT]


def _encloses(outer: Box, inner: Box, slack: float = 2.0) -> bool:
    return (outer[0] <= inner[0] + slack and outer[1] <= inner[1] + slack
            and outer[2] >= inner[2] - slack and outer[3] >= inner[3] - slack)


def _cluster(boxes: list[Box], gap: float, barriers: list[Box]) -> list[Box]:
    """Union boxes closer than ``gap`` unless their union would cover a barrier box (a caption)."""
    groups = _cluster_groups(boxes, gap, barriers)
    out = []
    for g in groups:
        box = boxes[g[0]]
        for i in g[1:]:
            box = union(box, boxes[i])
        out.append(box)
    return out


def _cluster_groups(boxes: list[Box], gap: float, barriers: list[Box]) -> list[list[int]]:
    """Groups of box indexes (see _cluster). With no barrier the end state does not depend on the merge
    order and proximity.proximity_groups reaches it in near-linear time; a barrier makes it depend on
    the order, so the few graphics clustered across captions keep the pairwise loop below."""
    if not barriers:
        return proximity_groups(boxes, gap)
    return pairwise_groups(boxes, gap, barriers)


def pairwise_groups(boxes: list[Box], gap: float, barriers: list[Box]) -> list[list[int]]:
    """Merge pairs in (y0, x0) order, repeating until nothing merges; a merge that would cover more than a
    quarter of a barrier box is refused. Quadratic per pass: for the few graphics of a page only."""
    sets = UnionFind(len(boxes))
    box_of = {i: boxes[i] for i in range(len(boxes))}  # a set's box, at its root
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0]))
    changed = True
    while changed:  # repeat: a merged box may now reach a box it did not reach before
        changed = False
        for a_pos, a in enumerate(order):
            for b in order[a_pos + 1:]:
                ra, rb = sets.find(a), sets.find(b)
                if ra == rb or axis_gap(box_of[ra], box_of[rb]) > gap:
                    continue
                merged = union(box_of[ra], box_of[rb])
                if any(overlap_area(merged, bar) > 0.25 * (box_width(bar) * box_height(bar)) for bar in barriers):
                    continue
                sets.union(ra, rb)
                box_of[sets.find(ra)] = merged
                changed = True
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(sets.find(i), []).append(i)
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
            if hov >= 0.3 * min(box_width(b), box_width(c)):
                if b[3] <= c[1] + 4 and c[1] - b[3] <= CAPTION_GAP:  # figure above the caption
                    score = max(0.0, c[1] - b[3])
                elif b[1] >= c[3] - 4 and b[1] - c[3] <= CAPTION_GAP:  # figure below the caption
                    score = max(0.0, b[1] - c[3]) + BELOW_PENALTY
                elif _side_caption_inside(cl, c):
                    score = 3 * BELOW_PENALTY
            elif vov >= 0.5 * min(box_height(b), box_height(c)):  # caption beside the figure
                hgap = max(c[0] - b[2], b[0] - c[2])
                if 0 <= hgap <= SIDE_GAP:
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
        if _side_caption_inside(clusters[ki], captions[ci].bbox):  # the figure is the region beside the caption
            b, c = clusters[ki].bbox, captions[ci].bbox
            left = c[0] - b[0] <= b[2] - c[2]
            clusters[ki].bbox = (c[2] + 2, b[1], b[2], b[3]) if left else (b[0], b[1], c[0] - 2, b[3])


def _side_caption_inside(cl: Cluster, c: Box) -> bool:
    """A caption set inside a vector figure's region, in a side column at its left or right edge: Springer
    books print captions in a narrow column beside the plot, top-aligned, and the drawing region (a frame or
    a background behind both) takes the caption in. The caption is at most a third of the region wide."""
    b = cl.bbox
    if not cl.members or any(m.kind != "drawing" for m in cl.members):
        return False
    inside = overlap_area(b, c) >= 0.8 * box_width(c) * box_height(c)
    at_edge = c[0] - b[0] <= 12 or b[2] - c[2] <= 12
    return inside and at_edge and box_width(c) <= box_width(b) / 3


FAR_CAPTION_GAP = 200.0  # the farthest a caption sits from its figure when nothing else lies between (pt)


def match_far_captions(clusters: list[Cluster], captions: list[Caption], body: list[Box]) -> None:
    """A caption left without a figure takes the uncaptioned cluster right above it (in its column) when
    nothing lies between them: no paragraph, no other figure, no other caption.

    Word exports and theses leave empty paragraphs, or a blank line of the figure's own frame, between an
    image and its caption; the CAPTION_GAP of journal layouts (50 pt) misses those. With nothing between
    them, the image above is the only thing the caption can describe (a caption describes what is above
    it first: layouts with captions above figures are matched by the near rule already).
    """
    matched = {id(c.caption) for c in clusters if c.caption}
    for cap in sorted((c for c in captions if id(c) not in matched), key=lambda c: c.bbox[1]):
        c = cap.bbox
        above = [k for k in clusters if k.caption is None and k.bbox[3] <= c[1] + 4
                 and c[1] - k.bbox[3] <= FAR_CAPTION_GAP
                 and min(k.bbox[2], c[2]) - max(k.bbox[0], c[0]) >= 0.3 * min(box_width(k.bbox), box_width(c))]
        if not above:
            continue
        nearest = max(above, key=lambda k: k.bbox[3])
        band = (max(nearest.bbox[0], c[0]), nearest.bbox[3] + 1, min(nearest.bbox[2], c[2]), c[1] - 1)
        others = body + [o.bbox for o in clusters if o is not nearest] + [o.bbox for o in captions if o is not cap]
        if band[3] > band[1] and any(overlap_area(band, o) > 0 for o in others):
            continue
        nearest.caption = cap


_BOLD_LEAD = re.compile(r"(?:^|[.|:;]\s+)([a-h]),\s+[A-Z]")  # Nature's panel leads: "Title. a, Schematic ..."


def named_letters(caption: str) -> set[str]:
    """The panel letters a caption names: its "(a)" / "a)" markers, else Nature-style "a, Text" leads."""
    return set(split_panel_captions(caption)[1]) or set(_BOLD_LEAD.findall(caption))


def _above_its_caption(u: Cluster, c: Cluster) -> bool:
    """Pictures both, and ``u`` set above ``c``'s caption, within its width, and the caption naming more panels
    than ``c`` has pictures: a figure's panels stacked over the caption below them all (Nature's full-width
    captions under rows of separately placed panels), not a logo or another figure's continued panel."""
    if c.caption is None or not all(m.kind == "image" for m in u.members + c.members):
        return False
    if len(named_letters(c.caption.text)) <= len(c.members):
        return False
    cap = c.caption.bbox
    return (cap[1] >= c.bbox[3] - 4 and u.bbox[3] <= cap[1] + 4
            and u.bbox[0] >= cap[0] - 4 and u.bbox[2] <= cap[2] + 4)


def merge_uncaptioned(clusters: list[Cluster], captions: list[Caption], body: list[Box]) -> list[Cluster]:
    """Fold uncaptioned clusters into the nearest captioned one when nothing (caption, body text) lies between.

    This joins the rows of a panel grid with wide gutters, which the gap rule alone keeps apart; pictures
    above the figure's caption and within its width join from further (FAR_MERGE_GAP, ``_above_its_caption``).
    """
    changed = True
    while changed:
        changed = False
        for u in [c for c in clusters if c.caption is None]:
            best = None
            for c in clusters:
                if c.caption is None or c is u:
                    continue
                d = axis_gap(u.bbox, c.bbox)
                if d > MERGE_GAP and not (d <= FAR_MERGE_GAP and _above_its_caption(u, c)):
                    continue
                merged = union(u.bbox, c.bbox)
                blocked = any(overlap_area(merged, cap.bbox) > 0 for cap in captions)
                blocked = blocked or any(overlap_area(merged, t) > 0.3 * box_width(t) * box_height(t)
                                         and not overlap_area(t, u.bbox) and not overlap_area(t, c.bbox)
                                         for t in body)
                if not blocked and (best is None or d < best[0]):
                    best = (d, c)
            if best:
                target = best[1]
                target.members += u.members
                target.bbox = union(target.bbox, u.bbox)
                clusters.remove(u)
                changed = True
                break
    return clusters


def _caption_row(cl: Cluster, captions: list[Caption]) -> list[Caption]:
    """Captions side by side on one row right below a cluster, left to right (empty when fewer than two)."""
    below = sorted((c for c in captions if c.bbox[1] >= cl.bbox[3] - 4 and c.bbox[1] - cl.bbox[3] <= CAPTION_GAP
                    and min(c.bbox[2], cl.bbox[2]) > max(c.bbox[0], cl.bbox[0])), key=lambda c: c.bbox[1])
    if len(below) < 2:
        return []
    top = below[0].bbox
    row = sorted((c for c in below if c.bbox[1] < top[3] and c.bbox[3] > top[1]), key=lambda c: c.bbox[0])
    disjoint = all(a.bbox[2] <= b.bbox[0] for a, b in zip(row, row[1:]))
    return row if len(row) >= 2 and disjoint else []


def split_under_captions(clusters: list[Cluster], captions: list[Caption]) -> list[Cluster]:
    """A cluster with two or more captions side by side right below it is as many figures (Word exports set
    figure pairs in a table row, a few points apart, each image with its own caption): its members go to the
    caption column their centre lies in. One vector region over several captions is cut at the boundaries
    between them; one embedded image cannot be cut and stays whole."""
    out: list[Cluster] = []
    for cl in clusters:
        row = _caption_row(cl, captions)
        cuts = [(a.bbox[2] + b.bbox[0]) / 2 for a, b in zip(row, row[1:])]
        groups: dict[int, list[Graphic]] = {}
        for m in cl.members:
            groups.setdefault(sum((m.bbox[0] + m.bbox[2]) / 2 > x for x in cuts), []).append(m)
        if row and len(groups) == len(row):
            for k in sorted(groups):
                box = groups[k][0].bbox
                for m in groups[k][1:]:
                    box = union(box, m.bbox)
                out.append(Cluster(members=groups[k], bbox=box))
        elif row and all(m.kind == "drawing" for m in cl.members):
            edges = [cl.bbox[0], *cuts, cl.bbox[2]]
            for x0, x1 in zip(edges, edges[1:]):
                box = (x0, cl.bbox[1], x1, cl.bbox[3])
                out.append(Cluster(members=[Graphic(bbox=box, kind="drawing")], bbox=box))
        else:
            out.append(cl)
    return out


def merge_tiles(clusters: list[Cluster], blockers: list[Box], captions: list[Box]) -> list[Cluster]:
    """Clusters of embedded images that tile one rectangle (pdf.tiling: a full grid, or a row under one
    caption; aligned, narrow gutters, no caption or paragraph inside) are one cluster, in its first cell's place."""
    cells = [i for i, cl in enumerate(clusters) if all(m.kind == "image" for m in cl.members)]
    groups = grid_groups([clusters[i].bbox for i in cells], blockers, captions)
    if not groups:
        return clusters
    first = {cells[g[0]]: [cells[i] for i in g] for g in groups}
    merged = {i for g in first.values() for i in g}
    out = []
    for i, cl in enumerate(clusters):
        if i in first:
            members = [m for k in first[i] for m in clusters[k].members]
            box = clusters[first[i][0]].bbox
            for k in first[i][1:]:
                box = union(box, clusters[k].bbox)
            out.append(Cluster(members=members, bbox=box))
        elif i not in merged:
            out.append(cl)
    return out


def assemble_figures(graphics: list[Graphic], captions: list[Caption], body: list[Box]) -> list[Cluster]:
    """Graphics -> clusters (close together, not across a caption) -> captions matched -> grids merged."""
    groups = _cluster_groups([g.bbox for g in graphics], GRAPHIC_GAP, [c.bbox for c in captions])
    clusters = []
    for g in groups:
        members = [graphics[i] for i in g]
        box = members[0].bbox
        for m in members[1:]:
            box = union(box, m.bbox)
        clusters.append(Cluster(members=members, bbox=box))
    clusters = merge_tiles(clusters, [c.bbox for c in captions] + body, [c.bbox for c in captions])
    clusters = split_under_captions(clusters, captions)
    match_captions(captions, clusters)
    clusters = merge_uncaptioned(clusters, captions, body)
    return clusters


def panel_letters(blocks: list[TextBlock], captions: list[Caption], bbox: Box) -> list[tuple[str, Box]]:
    """Printed panel letters ("(a)", "a", "B") inside or just outside a figure box, lower-cased, unique."""
    caption_blocks = {i for c in captions for i in c.blocks}
    area = expand(bbox, LABEL_MARGIN)
    found: list[tuple[str, Box]] = []
    for i, blk in enumerate(blocks):
        if i in caption_blocks and not any(c.block == i and c.label_lines for c in captions):
            continue
        for ln in blk.lines:
            for text, sbox in ln.spans:
                sub = _SUB_CAPTION.match(text.strip())
                if sub and len(text.split()) <= SUB_CAPTION_WORDS and centre_in(sbox, area):
                    found.append((sub.group(1), round_box(sbox)))  # "(a) Original SEM image" under its panel
                    continue
                for token in text.split():
                    m = _PANEL_LABEL.match(token)
                    if m and centre_in(sbox, area) and (len(text.split()) == 1):
                        found.append((m.group(1).lower(), round_box(sbox)))
    found.sort(key=lambda x: (x[0], x[1][1], x[1][0]))
    unique: dict[str, Box] = {}
    for letter, box in found:
        unique.setdefault(letter, box)
    run = sorted(unique.items())
    # panels run a, b, c, ...: a letter far from the run is a symbol ("H" for hydrogen, an "A" spot marker before
    # f, g, h): the longest stretch without a gap of more than LETTER_SKIP letters (the first of equals) is kept
    cuts = [0, *(k for k in range(1, len(run)) if ord(run[k][0]) - ord(run[k - 1][0]) > LETTER_SKIP), len(run)]
    return max((run[a:b] for a, b in zip(cuts, cuts[1:])), key=len, default=run)


def label_parts(parts: list[FigurePart], letters: list[tuple[str, Box]]) -> None:
    """Give each part the nearest printed letter (one letter per part, within LABEL_MARGIN + a little)."""
    pairs = sorted((distance(lb, p.bbox), li, pi) for li, (_, lb) in enumerate(letters)
                   for pi, p in enumerate(parts))
    used_l: set[int] = set()
    used_p: set[int] = set()
    for d, li, pi in pairs:
        if d > LABEL_MARGIN + 6 or li in used_l or pi in used_p:
            continue
        parts[pi].label = letters[li][0]
        used_l.add(li)
        used_p.add(pi)


def in_figure_text_box(blocks: list[TextBlock], captions: list[Caption], region: Box) -> Box:
    """Grow a vector region by the short text lines around it (tick labels, axis titles, legends)."""
    caption_blocks = {i for c in captions for i in c.blocks}
    area = expand(region, 20)
    box = region
    for i, blk in enumerate(blocks):
        if i in caption_blocks or blk.is_paragraph:
            continue
        for ln in blk.lines:
            if ln.bbox[0] >= area[0] and ln.bbox[2] <= area[2] and ln.bbox[1] >= area[1] and ln.bbox[3] <= area[3]:
                box = union(box, ln.bbox)
    return box


CONTEXT_CHARS = 1200  # the most text kept as the context of an uncaptioned figure
HEADING_SIZE = 1.5  # a line set at least this many times the page's median font size is a heading
SIDE_GAP_TEXT = 50.0  # text set this close beside a picture, within its height, is its label (slides)


def beside(text: Box, figure: Box) -> bool:
    """A text block set beside a figure: within the figure's height (at least 80 % of the block) and at most
    SIDE_GAP_TEXT left or right of it. Slides put a picture's explanation there, "Intergranular fracture:
    Crack propagation is along grain boundaries" left of one micrograph, the next one's right of another."""
    inside = min(text[3], figure[3]) - max(text[1], figure[1])
    gap = max(text[0] - figure[2], figure[0] - text[2])
    return inside >= 0.8 * box_height(text) and -2 <= gap <= SIDE_GAP_TEXT


def _stacked(text: Box, figure: Box) -> bool:
    """A text block set right above or under a figure, within its width: as much that figure's as a neighbour's."""
    across = min(text[2], figure[2]) - max(text[0], figure[0])
    gap = max(text[1] - figure[3], figure[1] - text[3])
    return across >= 0.8 * box_width(text) and -2 <= gap <= SIDE_GAP_TEXT


def _worded(text: str) -> bool:
    """Words, not a formula or tick labels ("1+ε", "l A"): at least three words of three letters."""
    return len(re.findall(r"[^\W\d_]{3,}", text)) >= 3


def figure_context(blocks: list[TextBlock], bbox: Box, skip: set[int], others: list[Box]) -> tuple[str, bool]:
    """The text an uncaptioned figure is read with: the blocks right above it in its column (a label line
    such as "Good example:", then the nearest paragraph), and a short label line right below it.

    Text set beside the figure within its height (``beside``: a slide's explanation next to its picture) is
    its context instead, and text beside another figure is never this one's.

    Returns (text, open_top): open_top is True when no paragraph or heading was found above on this page (the
    figure continues the previous page's text, or a series of figures: the caller may add that context).
    skip: indexes of caption blocks; others: boxes of the page's other figures (the walk stops at one).
    """
    def same_column(b: Box) -> bool:
        return min(b[2], bbox[2]) - max(b[0], bbox[0]) > 0.3 * min(box_width(b), box_width(bbox))

    skip = skip | {i for i, blk in enumerate(blocks) if any(centre_in(blk.bbox, o) for o in [bbox, *others])}
    side = [blk.text for i, blk in enumerate(blocks) if i not in skip and _worded(blk.text) and beside(blk.bbox, bbox)
            and not any((beside(blk.bbox, o) and axis_gap(blk.bbox, o) < axis_gap(blk.bbox, bbox)) or _stacked(blk.bbox, o)
                        for o in others)]  # nearer another figure, or set under one: not this one's label
    if side:
        return " ".join(" ".join(side).split())[-CONTEXT_CHARS:], False
    skip |= {i for i, blk in enumerate(blocks) if _worded(blk.text) and any(beside(blk.bbox, o) for o in others)}
    above = sorted((i for i, blk in enumerate(blocks) if i not in skip and blk.bbox[3] <= bbox[1] + 2
                    and same_column(blk.bbox) and blk.text.strip()), key=lambda i: -blocks[i].bbox[3])
    sizes = sorted(ln.size for blk in blocks for ln in blk.lines)
    heading_size = HEADING_SIZE * sizes[len(sizes) // 2] if sizes else float("inf")
    parts: list[str] = []
    found_paragraph = False
    for i in above:
        blk = blocks[i]
        if any(o[3] <= bbox[1] + 2 and o[1] >= blk.bbox[3] - 2 and same_column(o) for o in others):
            break  # another figure sits between: this text belongs to it
        parts.insert(0, blk.text)
        # a heading (a slide's title, a section heading: set larger than the page's text) starts a new topic:
        # the text before it, on this page or the previous one, is not about the figure under it
        if blk.is_paragraph or max(ln.size for ln in blk.lines) >= heading_size:
            found_paragraph = True
            break
    def under_it(b: TextBlock) -> bool:
        # a short block set under the image and no wider than it (a credit or description line, "Fracture surface
        # of tire cord wire loaded in tension. Courtesy of ...") is its caption in all but name, even if it runs
        # to a few lines; body text below spans its column, wider than a figure set beside other figures
        return len(b.text) <= 240 and b.bbox[0] >= bbox[0] - 10 and b.bbox[2] <= bbox[2] + 10

    below = [blk for i, blk in enumerate(blocks) if i not in skip and 0 <= blk.bbox[1] - bbox[3] <= 20
             and same_column(blk.bbox) and ((not blk.is_paragraph and len(blk.text) <= 120) or under_it(blk))]
    if below:
        parts.append(below[0].text)
    text = " ".join(" ".join(parts).split())
    return text[-CONTEXT_CHARS:], not found_paragraph


def separate_uncaptioned(clusters: list[Cluster], page_width: float) -> list[Cluster]:
    """An uncaptioned cluster of large images (each over a third of the page wide) is several figures: with no
    caption naming panels there is nothing that makes them one, and screenshots stacked a few points apart
    (reports, slides, theses) are separate pictures."""
    out: list[Cluster] = []
    for cl in clusters:
        images = [g for g in cl.members if g.kind == "image"]
        if (cl.caption is None and len(images) > 1 and len(images) == len(cl.members)
                and all(box_width(g.bbox) > page_width / 3 for g in images)
                and not tiles_grid([g.bbox for g in images])):  # a sheet of pictures in a grid stays one
            out += [Cluster(members=[g], bbox=g.bbox) for g in images]
        else:
            out.append(cl)
    return out
