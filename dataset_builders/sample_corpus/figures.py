"""Figure plans of one sample paper: which figures it has (single fractograph, composed grid, separate
panels, reprint, vector plot or schematic, micrograph, photograph, distractor micrograph), their textures,
encoded rasters, composed grid rasters, sizes on the page (a column, or both columns of a two-column page),
caption position (below, or above) and captions worded as real papers word them (``wording``: paraphrases,
abbreviations, mixed letter scoping, hedges, negations), with what each caption asserts, hedges or denies.

The planner draws from the paper's own ``random.Random`` and numpy generator, so the same paper index and
seed always give the same figures.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .page_layout import COL_W, X0, X1, encode_image
from .text import MATERIALS, NEG_WORDS, TESTS, negation_for
from .textures import DISTRACTOR_KINDS, FRACTURE_KINDS, KINDS, NON_METAL_DISTRACTORS, kind_allowed, render
from .truth import TruthFigure
from .wording import DISTRACTORS, Wording, hedgeable


@dataclass
class Panel:
    """One panel of a planned figure (the only one of a single-image figure)."""

    letter: str | None
    texture: str
    phrase: str = ""  # words naming its features
    negated: str | None = None  # canonical name denied in the caption
    hedged: str | None = None  # canonical name only hedged in the caption (not a label)
    pixels: np.ndarray | None = None
    encoded: bytes | None = None
    fmt: str = "jpeg"
    duplicate_of: str | None = None


@dataclass
class Figure:
    """One planned figure: its layout, panels, caption and size on the page."""

    number: int
    layout: str
    panels: list[Panel]
    grid: tuple[int, int] | None = None
    caption: str = ""
    width: float = 0.0  # points
    height: float = 0.0
    duplicate_of: str | None = None
    duplicate_mode: str | None = None
    caption_above: bool = False
    span: bool = False  # across both columns of a two-column page
    # filled when drawn
    truth: TruthFigure | None = None


@dataclass
class Reprintable:
    """A single fractograph of this paper that the next paper may reprint."""

    figure_id: str
    texture: str
    pixels: np.ndarray
    encoded: bytes
    fmt: str


LETTERS = "abcdef"
COMMON_KINDS = ("equiaxed_dimples", "elongated_dimples", "cleavage", "intergranular", "striations", "gas_pores",
                "lack_of_fusion", "creep_cavities", "fish_eye", "unmelted_powder")


class FigurePlanner:
    """Plans the figures of one paper; ``grids`` keeps each composed grid raster (encoded, pixels, cells)."""

    def __init__(self, index: int, stem: str, r: random.Random, rng: np.random.Generator, material: str,
                 reprint: tuple[Reprintable, str] | None, wording: Wording, columns: int = 1):
        self.index, self.stem = index, stem
        self.wording, self.columns = wording, columns
        self._spanned = False
        self.r, self.rng = r, rng
        self.material = material
        cls = self.material_class = MATERIALS[material]
        # the textures this material can show (issue 27: no crazing on an aluminium alloy)
        self.fracture_kinds = [k for k in FRACTURE_KINDS if kind_allowed(k, cls)]
        # COMMON_KINDS are the common fractographs of metals; a non-metal's few textures are all common
        self.common_kinds = [k for k in COMMON_KINDS if kind_allowed(k, cls)] if cls == "metal" \
            else self.fracture_kinds
        self.distractor_kinds = DISTRACTOR_KINDS if cls == "metal" else NON_METAL_DISTRACTORS
        self.reprint = reprint
        self.figures: list[Figure] = []
        self.reprintables: list[Reprintable] = []
        self.grids: dict[int, tuple[bytes, np.ndarray, list[tuple[int, int, int, int]]]] = {}

    def _texture(self, kind: str, w: int, h: int) -> np.ndarray:
        return render(kind, w, h, self.rng)

    def plan_figures(self) -> None:
        r = self.r
        n = r.randint(2, 4)
        layouts = ["single"]  # every paper has a single fractograph (the reprint source for the next)
        pool = ["grid", "grid", "separate", "plot", "schematic", "micrograph", "photo", "single"]
        forced = ("grid", "separate", "plot", "micrograph", "schematic", "photo")[self.index % 6]
        layouts.append(forced)
        while len(layouts) < n:
            layouts.append(r.choice(pool))
        if self.reprint is not None:
            layouts[-1:] = [layouts[-1], "reprint"] if len(layouts) < 4 else ["reprint"]
        if self.index % 3 != 2:  # two papers in three show a micrograph that is no fracture surface
            layouts.append("distractor")
        r.shuffle(layouts)
        for number, layout in enumerate(layouts, 1):
            self.figures.append(self._plan_figure(number, layout))

    def _frame(self, span: bool) -> float:
        """Width (points) a figure may take: the text width, or one column of a two-column page."""
        return X1 - X0 if self.columns == 1 or span else COL_W

    def _plan_figure(self, number: int, layout: str) -> Figure:
        r = self.r
        words = self.wording
        if layout == "single":
            kind = r.choice(self.common_kinds)
            fmt = "png" if r.random() < 0.25 else "jpeg"
            w, h = r.choice(((512, 384), (480, 360), (448, 352)))
            px = self._texture(kind, w, h)
            panel = Panel(None, kind, words.phrase(kind), pixels=px, encoded=encode_image(px, fmt), fmt=fmt)
            width = r.uniform(0.55, 0.7) if self.columns == 1 else r.uniform(0.9, 1.0)
            fig = Figure(number, layout, [panel], width=width * self._frame(False))
            self.reprintables.append(Reprintable(f"{self.stem}:fig{number}", kind, px, panel.encoded, fmt))
        elif layout == "reprint":
            src, mode = self.reprint  # type: ignore[misc]
            if mode == "identical":
                encoded, px, fmt = src.encoded, src.pixels, src.fmt
            elif mode == "reencoded":
                px, fmt = src.pixels, "jpeg"
                encoded = encode_image(px, "jpeg", quality=70)
            else:  # rescaled
                img = Image.fromarray(src.pixels)
                img = img.resize((int(img.width * 0.75), int(img.height * 0.75)), Image.BILINEAR)
                px, fmt = np.asarray(img), "jpeg"
                encoded = encode_image(px, "jpeg", quality=85)
            panel = Panel(None, src.texture, words.phrase(src.texture), pixels=px, encoded=encoded, fmt=fmt,
                          duplicate_of=src.figure_id)
            width = r.uniform(0.5, 0.65) if self.columns == 1 else r.uniform(0.85, 1.0)
            fig = Figure(number, "single", [panel], width=width * self._frame(False),
                         duplicate_of=src.figure_id, duplicate_mode=mode)
        elif layout in ("grid", "separate"):
            grid = r.choice(((1, 2), (2, 2), (1, 3), (2, 3))) if layout == "grid" else \
                r.choice(((1, 2), (2, 2), (1, 3)))
            n = grid[0] * grid[1]
            if layout == "separate" and grid == (2, 2) and r.random() < 0.4:
                n = 3  # a 2x2 grid with one empty cell
            kinds = [r.choice(self.common_kinds if r.random() < 0.8 else self.fracture_kinds) for _ in range(n)]
            if n >= 3 and r.random() < 0.4:  # two panels of one morphology: "... (b, c)" in the caption
                kinds[2] = kinds[1]
            panels = [Panel(LETTERS[i], k, words.phrase(k)) for i, k in enumerate(kinds)]
            pw, ph = (320, 240) if grid[1] <= 2 else (288, 216)
            for p in panels:
                p.pixels = self._texture(p.texture, pw, ph)
                if layout == "separate":
                    p.fmt = "png" if r.random() < 0.2 else "jpeg"
                    p.encoded = encode_image(p.pixels, p.fmt)
            if r.random() < 0.5:  # deny an absent feature for one panel
                target = r.choice(panels)
                target.negated = negation_for(target.texture, r)
            if r.random() < 0.4:  # hedge another absent feature for one panel
                target = r.choice(panels)
                target.hedged = hedgeable(set(KINDS[target.texture].features) | {target.negated}, r,
                                           self.material_class)
            span = self.columns == 2 and (grid[1] == 3 or not self._spanned)
            self._spanned |= span
            fig = Figure(number, layout, panels, grid=grid, span=span,
                         width=self._frame(span) * (0.85 if grid[1] == 2 and not span else 1.0))
        elif layout in ("micrograph", "photo", "distractor"):
            kind = {"micrograph": "etched_microstructure", "photo": "test_rig_photo"}.get(layout) or \
                r.choice(self.distractor_kinds)
            w, h = (448, 336) if layout == "photo" else (480, 360)
            px = self._texture(kind, w, h)
            panel = Panel(None, kind, pixels=px, encoded=encode_image(px, "jpeg"), fmt="jpeg")
            width = r.uniform(0.45, 0.55) if self.columns == 1 else r.uniform(0.85, 1.0)
            fig = Figure(number, layout, [panel], width=width * self._frame(False))
        else:  # vector plot / schematic
            width = (0.6 if layout == "plot" else 0.75) if self.columns == 1 else 0.95
            fig = Figure(number, layout, [Panel(None, "vector_" + layout)], width=width * self._frame(False))
        fig.caption_above = r.random() < 0.25
        fig.caption = self._caption(fig)
        fig.height = self._figure_height(fig)
        return fig

    def _figure_height(self, fig: Figure) -> float:
        if fig.layout == "grid":
            self._compose_grid(fig)
            canvas = self.grids[fig.number][1]
            return fig.width * canvas.shape[0] / canvas.shape[1]
        if fig.layout == "separate":
            rows, cols = fig.grid  # type: ignore[misc]
            gut = 8.0
            cell_w = (fig.width - gut * (cols - 1)) / cols
            ph, pw = fig.panels[0].pixels.shape[:2]  # type: ignore[union-attr]
            return rows * cell_w * ph / pw + gut * (rows - 1)
        if fig.layout == "plot":
            return fig.width * 0.68
        if fig.layout == "schematic":
            return fig.width * 0.42
        px = fig.panels[0].pixels
        return fig.width * px.shape[0] / px.shape[1]  # type: ignore[union-attr]

    def _compose_grid(self, fig: Figure) -> None:
        """Compose the panels into ONE raster with white gutters and a letter in a corner of each."""
        r = self.r
        rows, cols = fig.grid  # type: ignore[misc]
        ph, pw = fig.panels[0].pixels.shape[:2]  # type: ignore[union-attr]
        gut = r.randint(6, 12)
        canvas = Image.new("L", (cols * pw + (cols - 1) * gut, rows * ph + (rows - 1) * gut), 255)
        draw = ImageDraw.Draw(canvas)
        font = ImageFont.load_default(size=r.choice((20, 24, 28)))
        corner = r.choice(("tl", "tl", "bl", "tr"))
        cells = []
        for i, p in enumerate(fig.panels):
            y0, x0 = (i // cols) * (ph + gut), (i % cols) * (pw + gut)
            canvas.paste(Image.fromarray(p.pixels), (x0, y0))  # type: ignore[arg-type]
            l, t, rr, b = font.getbbox(p.letter or "")
            bw, bh = rr + 10, b + 8
            bx = x0 + 4 if corner in ("tl", "bl") else x0 + pw - bw - 4
            by = y0 + 4 if corner in ("tl", "tr") else y0 + ph - bh - 4
            draw.rectangle((bx, by, bx + bw, by + bh), fill=255)
            draw.text((bx + 5, by + 2), p.letter or "", fill=0, font=font)
            cells.append((x0, y0, x0 + pw, y0 + ph))
        pixels = np.asarray(canvas)
        self.grids[fig.number] = (encode_image(pixels, "jpeg", quality=90), pixels, cells)

    def _caption(self, fig: Figure) -> str:
        r = self.r
        words = self.wording
        lead = r.choice(("Fig. {n}.", "Figure {n}.", "FIG. {n}", "Fig. {n}:")).format(n=fig.number)
        m = self.material
        if fig.layout in ("grid", "separate"):
            groups: list[list[Panel]] = []  # panels of one morphology share one caption part: "(b, c)"
            for p in fig.panels:
                if groups and groups[-1][0].texture == p.texture and not (p.negated or p.hedged
                                                                          or groups[-1][-1].negated
                                                                          or groups[-1][-1].hedged):
                    groups[-1].append(p)
                else:
                    groups.append([p])

            def said(group: list[Panel]) -> str:
                head = group[0]
                for p in group[1:]:
                    p.phrase = head.phrase
                text = head.phrase
                if head.hedged:
                    text += f" and {words.hedge(head.hedged)}"
                return text

            def letters(group: list[Panel]) -> str:
                return ", ".join(p.letter or "" for p in group)

            if r.random() < 0.6:
                parts = []
                for g in groups:
                    part = f"({letters(g)}) {said(g)}"
                    if g[-1].negated:
                        part += words.caption_negation(g[-1].negated)
                    parts.append(part)
                body = f"SEM fractographs of the {m} specimens: " + "; ".join(parts) + "."
            else:
                parts = [f"{said(g)} ({letters(g)})" + (f" without {r.choice(NEG_WORDS[g[-1].negated])}"
                                                         if g[-1].negated else "") for g in groups]
                joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
                body = f"Fracture surfaces of {m} after {r.choice(TESTS)} showing {joined}."
        elif fig.layout == "single":
            p = fig.panels[0]
            body = r.choice((
                "SEM fractograph showing {ph}.",
                "SEM fractograph of the {m} specimen showing {ph}.",
                "Secondary electron image of the fracture surface of {m} with {ph}.",
            )).format(ph=p.phrase, m=m)
            x = r.random()
            if x < 0.3:
                p.negated = negation_for(p.texture, r)
                body = body[:-1] + words.caption_negation(p.negated) + "."
            elif x < 0.5:
                p.hedged = hedgeable(set(KINDS[p.texture].features), r, self.material_class)
                body = body[:-1] + f", and {words.hedge(p.hedged)} near the origin."  # type: ignore[arg-type]
            if fig.duplicate_of:
                body += f" Reprinted from Ref. [{r.randint(3, 30)}] with permission."
        elif fig.layout == "plot":
            body = f"Engineering stress–strain curves of the {m} specimens in the as-built and heat-treated conditions."
        elif fig.layout == "schematic":
            body = "Schematic of the specimen geometry (dimensions in mm)."
        elif fig.layout == "micrograph":
            body = f"Optical micrograph of the etched microstructure of {m} (Kroll's reagent)."
        elif fig.layout == "distractor":
            body = r.choice(DISTRACTORS[fig.panels[0].texture][0]).format(m=m)
        else:
            body = f"Photograph of the servo-hydraulic test rig used for the {r.choice(TESTS)} tests."
        return f"{lead} {body}"
