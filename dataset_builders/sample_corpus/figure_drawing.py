"""Drawing a planned figure onto its page: its rasters (one composed grid, separate panels with letters,
or a single image), or a vector stress-strain plot or specimen schematic, with its caption below (or above,
as some journals print it), centred in its column or across the page; returns
the figure's ground truth (bbox, panels with their features, embedded images with their hashes).
"""

from __future__ import annotations

import random
from typing import Literal

import numpy as np
import pymupdf

from fracto_core.vocabulary import sort_features

from .blocks import Block
from .figures import Figure, FigurePlanner, Panel
from .page_layout import X0, as_box, put_text, sha256_hex
from .textures import KINDS
from .truth import Box, TruthFigure, TruthImage, TruthPanel


def draw_figure(page: pymupdf.Page, pno: int, block: Block, y: float, plans: FigurePlanner,
                left: float = X0) -> TruthFigure:
    """Draw the figure of ``block`` (its frame's left edge at ``left``) with its top at ``y``; the caption goes
    6 pt below it, or at ``y`` with the figure 6 pt below the caption."""
    fig: Figure = block.figure  # type: ignore[assignment]
    cap_y = y + fig.height + 6
    if fig.caption_above:
        cap_y, y = y, y + len(block.lines) * block.lead + 6
    x0 = left + (block.width - fig.width) / 2
    rect = pymupdf.Rect(x0, y, x0 + fig.width, y + fig.height)
    images: list[TruthImage] = []
    panels: list[TruthPanel] = []
    kind: Literal["raster", "multi_raster", "vector"] = "raster"

    def put(r: pymupdf.Rect, data: bytes, fmt: str, px: np.ndarray) -> None:
        page.insert_image(r, stream=data, keep_proportion=False)
        images.append(TruthImage(bbox=as_box(r), width=px.shape[1], height=px.shape[0], format=fmt,
                                 sha256=sha256_hex(data)))

    def truth_panel(p: Panel, box: Box) -> TruthPanel:
        feats = list(KINDS[p.texture].features) if p.texture in KINDS else []  # all named, however worded
        return TruthPanel(letter=p.letter, texture=p.texture, features=sort_features(feats),
                          negated=[p.negated] if p.negated else [], hedged=[p.hedged] if p.hedged else [],
                          bbox=box, duplicate_of=p.duplicate_of)

    bbox = rect
    if fig.layout == "grid":
        grid_encoded, grid_pixels, grid_cells = plans.grids[fig.number]  # composed at planning time
        put(rect, grid_encoded, "jpeg", grid_pixels)
        scale = rect.width / grid_pixels.shape[1]
        for p, (cx0, cy0, cx1, cy1) in zip(fig.panels, grid_cells):
            panels.append(truth_panel(p, as_box(pymupdf.Rect(rect.x0 + cx0 * scale, rect.y0 + cy0 * scale,
                                                             rect.x0 + cx1 * scale, rect.y0 + cy1 * scale))))
    elif fig.layout == "separate":
        kind = "multi_raster"
        rows, cols = fig.grid  # type: ignore[misc]
        gut = 8.0
        cw = (fig.width - gut * (cols - 1)) / cols
        ch = (fig.height - gut * (rows - 1)) / rows
        for i, p in enumerate(fig.panels):
            r = pymupdf.Rect(rect.x0 + (i % cols) * (cw + gut), rect.y0 + (i // cols) * (ch + gut), 0, 0)
            r.x1, r.y1 = r.x0 + cw, r.y0 + ch
            put(r, p.encoded, p.fmt, p.pixels)  # type: ignore[arg-type]
            put_text(page, (r.x0 + 3, r.y0 + 11), f"({p.letter})", fontname="F2", fontsize=9,
                     color=(1, 1, 1))
            panels.append(truth_panel(p, as_box(r)))
        bbox = pymupdf.Rect()
        for im in images:
            bbox |= pymupdf.Rect(im.bbox)
    elif fig.layout in ("plot", "schematic"):
        kind = "vector"
        bbox = draw_plot(page, rect, plans.r) if fig.layout == "plot" else draw_schematic(page, rect, plans.r)
        panels.append(truth_panel(fig.panels[0], as_box(bbox)))
    else:
        p = fig.panels[0]
        put(rect, p.encoded, p.fmt, p.pixels)  # type: ignore[arg-type]
        panels.append(truth_panel(p, as_box(rect)))
    for k, (_, line) in enumerate(block.lines):
        put_text(page, (left, cap_y + (k + 1) * block.lead - block.lead * 0.25), line,
                 fontname="F1", fontsize=block.size)
    return TruthFigure(figure_id=f"{plans.stem}:fig{fig.number}", page=pno, bbox=as_box(bbox), number=fig.number,
                       caption=fig.caption, kind=kind, layout=fig.layout, grid=fig.grid,  # type: ignore[arg-type]
                       is_fracture=fig.layout in ("single", "grid", "separate"), panels=panels, images=images,
                       duplicate_of=fig.duplicate_of, duplicate_mode=fig.duplicate_mode,  # type: ignore[arg-type]
                       caption_above=fig.caption_above, spans_columns=fig.span and plans.columns == 2)



def draw_plot(page: pymupdf.Page, rect: pymupdf.Rect, r: random.Random) -> pymupdf.Rect:
    """Engineering stress-strain curves: axes, ticks, tick labels, two or three curves, a legend."""
    ax = pymupdf.Rect(rect.x0 + 36, rect.y0 + 6, rect.x1 - 8, rect.y1 - 30)
    black = (0, 0, 0)
    page.draw_line(ax.bl, ax.br, color=black, width=0.8)
    page.draw_line(ax.bl, ax.tl, color=black, width=0.8)
    max_strain, max_stress = 20, r.choice((600, 1200, 1600))
    for i in range(5):
        x = ax.x0 + ax.width * i / 4
        page.draw_line((x, ax.y1), (x, ax.y1 + 3), color=black, width=0.6)
        put_text(page, (x - 4, ax.y1 + 12), str(max_strain * i // 4), fontname="F1", fontsize=7)
        yy = ax.y1 - ax.height * i / 4
        page.draw_line((ax.x0 - 3, yy), (ax.x0, yy), color=black, width=0.6)
        put_text(page, (ax.x0 - 24, yy + 2.5), str(max_stress * i // 4), fontname="F1", fontsize=7)
    put_text(page, (ax.x0 + ax.width / 2 - 40, rect.y1 - 6), "Engineering strain (%)", fontname="F1",
             fontsize=7.5)
    put_text(page, (rect.x0 + 2, ax.y0 + 10), "MPa", fontname="F1", fontsize=7.5)
    colours = ((0.85, 0.2, 0.15), (0.1, 0.35, 0.8), (0.15, 0.6, 0.25))
    n_curves = r.randint(2, 3)
    for c in range(n_curves):
        e_f = r.uniform(0.35, 0.95)
        uts = r.uniform(0.55, 0.95)
        pts = []
        for k in range(41):
            e = e_f * k / 40
            if e < 0.02:  # elastic line up to yield at 85 % of the tensile strength
                s = uts * 0.85 * e / 0.02
            else:  # strain hardening towards the tensile strength
                s = uts * (0.85 + 0.15 * min(1.0, (e - 0.02) / (e_f * 0.6)))
            if e > e_f * 0.85:
                s *= 1 - (e - e_f * 0.85) / (e_f * 0.15) * 0.25
            pts.append((ax.x0 + e * ax.width, ax.y1 - s * ax.height))
        page.draw_polyline(pts, color=colours[c], width=1.2)
        ly = ax.y0 + 8 + c * 10
        page.draw_line((ax.x1 - 70, ly), (ax.x1 - 58, ly), color=colours[c], width=1.2)
        put_text(page, (ax.x1 - 54, ly + 2.5), ("as-built", "heat-treated", "HIP")[c], fontname="F1",
                 fontsize=7)
    return pymupdf.Rect(rect)

def draw_schematic(page: pymupdf.Page, rect: pymupdf.Rect, r: random.Random) -> pymupdf.Rect:
    """Dog-bone specimen outline with dimension lines."""
    cx, cy = rect.x0 + rect.width / 2, rect.y0 + rect.height * 0.45
    L, G = rect.width * 0.9, rect.width * 0.4
    H, g = rect.height * 0.5, rect.height * 0.22
    x0, x1 = cx - L / 2, cx + L / 2
    pts = [(x0, cy - H / 2), (cx - G / 2 - 20, cy - H / 2), (cx - G / 2, cy - g / 2), (cx + G / 2, cy - g / 2),
           (cx + G / 2 + 20, cy - H / 2), (x1, cy - H / 2), (x1, cy + H / 2), (cx + G / 2 + 20, cy + H / 2),
           (cx + G / 2, cy + g / 2), (cx - G / 2, cy + g / 2), (cx - G / 2 - 20, cy + H / 2), (x0, cy + H / 2),
           (x0, cy - H / 2)]
    page.draw_polyline(pts, color=(0, 0, 0), width=1.0, fill=(0.9, 0.9, 0.92))
    dy = rect.y1 - 14
    page.draw_line((x0, dy), (x1, dy), color=(0, 0, 0), width=0.5)
    page.draw_line((cx - G / 2, cy + g / 2 + 6), (cx + G / 2, cy + g / 2 + 6), color=(0, 0, 0), width=0.5)
    for x in (x0, x1):
        page.draw_line((x, dy - 4), (x, dy + 4), color=(0, 0, 0), width=0.5)
    put_text(page, (cx - 8, dy - 3), str(r.choice((80, 100, 120))), fontname="F1", fontsize=7.5)
    put_text(page, (cx - 8, cy + g / 2 + 16), str(r.choice((25, 30, 40))), fontname="F1", fontsize=7.5)
    put_text(page, (cx + G / 2 + 24, cy - H / 2 - 4), "R15", fontname="F1", fontsize=7.5)
    put_text(page, (x1 - 24, cy - H / 2 - 4), "Ø6", fontname="F1", fontsize=7.5)
    return pymupdf.Rect(x0 - 1, cy - H / 2 - 12, x1 + 1, dy + 5)
