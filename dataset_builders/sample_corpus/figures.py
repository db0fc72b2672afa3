"""Figure plans of one sample paper: which figures it has (single fractograph, composed grid, separate
panels, reprint, vector plot or schematic, micrograph, photograph), their textures, encoded rasters,
composed grid rasters, sizes on the page and captions (with the features each caption asserts or denies).

The planner draws from the paper's own ``random.Random`` and numpy generator, so the same paper index and
seed always give the same figures.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .page_layout import X0, X1, encode_image
from .text import NEG_WORDS, TESTS, negation_for, phrase
from .textures import FRACTURE_KINDS, render
from .truth import TruthFigure


@dataclass
class Panel:
    """One panel of a planned figure (the only one of a single-image figure)."""

    letter: str | None
    texture: str
    phrase: str = ""  # words naming its features
    negated: str | None = None  # canonical name denied in the caption
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
                 reprint: tuple[Reprintable, str] | None):
        self.index, self.stem = index, stem
        self.r, self.rng = r, rng
        self.material = material
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
        r.shuffle(layouts)
        for number, layout in enumerate(layouts, 1):
            self.figures.append(self._plan_figure(number, layout))

    def _plan_figure(self, number: int, layout: str) -> Figure:
        r = self.r
        if layout == "single":
            kind = r.choice(COMMON_KINDS)
            fmt = "png" if r.random() < 0.25 else "jpeg"
            w, h = r.choice(((512, 384), (480, 360), (448, 352)))
            px = self._texture(kind, w, h)
            panel = Panel(None, kind, phrase(kind, r), pixels=px, encoded=encode_image(px, fmt), fmt=fmt)
            fig = Figure(number, layout, [panel], width=r.uniform(0.55, 0.7) * (X1 - X0))
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
            panel = Panel(None, src.texture, phrase(src.texture, r), pixels=px, encoded=encoded, fmt=fmt,
                           duplicate_of=src.figure_id)
            fig = Figure(number, "single", [panel], width=r.uniform(0.5, 0.65) * (X1 - X0),
                          duplicate_of=src.figure_id, duplicate_mode=mode)
        elif layout in ("grid", "separate"):
            grid = r.choice(((1, 2), (2, 2), (1, 3), (2, 3))) if layout == "grid" else \
                r.choice(((1, 2), (2, 2), (1, 3)))
            n = grid[0] * grid[1]
            if layout == "separate" and grid == (2, 2) and r.random() < 0.4:
                n = 3  # a 2x2 grid with one empty cell
            kinds = [r.choice(COMMON_KINDS if r.random() < 0.8 else FRACTURE_KINDS) for _ in range(n)]
            panels = [Panel(LETTERS[i], k, phrase(k, r)) for i, k in enumerate(kinds)]
            pw, ph = (320, 240) if grid[1] <= 2 else (288, 216)
            for p in panels:
                p.pixels = self._texture(p.texture, pw, ph)
                if layout == "separate":
                    p.fmt = "png" if r.random() < 0.2 else "jpeg"
                    p.encoded = encode_image(p.pixels, p.fmt)
            if r.random() < 0.5:  # deny an absent feature for one panel
                target = r.choice(panels)
                target.negated = negation_for(target.texture, r)
            fig = Figure(number, layout, panels, grid=grid, width=(X1 - X0) * (0.85 if grid[1] == 2 else 1.0))
        elif layout in ("micrograph", "photo"):
            kind = "etched_microstructure" if layout == "micrograph" else "test_rig_photo"
            w, h = (480, 360) if layout == "micrograph" else (448, 336)
            px = self._texture(kind, w, h)
            panel = Panel(None, kind, pixels=px, encoded=encode_image(px, "jpeg"), fmt="jpeg")
            fig = Figure(number, layout, [panel], width=r.uniform(0.45, 0.55) * (X1 - X0))
        else:  # vector plot / schematic
            fig = Figure(number, layout, [Panel(None, "vector_" + layout)],
                          width=(X1 - X0) * (0.6 if layout == "plot" else 0.75))
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
        lead = r.choice(("Fig. {n}.", "Figure {n}.", "FIG. {n}", "Fig. {n}:")).format(n=fig.number)
        m = self.material
        if fig.layout in ("grid", "separate"):
            if r.random() < 0.7:
                parts = []
                for p in fig.panels:
                    part = f"({p.letter}) {p.phrase}"
                    if p.negated:
                        part += f", no {r.choice(NEG_WORDS[p.negated])} visible"
                    parts.append(part)
                body = f"SEM fractographs of the {m} specimens: " + "; ".join(parts) + "."
            else:
                parts = [f"{p.phrase} ({p.letter})" + (f" without {r.choice(NEG_WORDS[p.negated])}"
                                                      if p.negated else "") for p in fig.panels]
                body = (f"Fracture surfaces of {m} after {r.choice(TESTS)} showing "
                        + ", ".join(parts[:-1]) + " and " + parts[-1] + ".")
        elif fig.layout == "single":
            p = fig.panels[0]
            body = r.choice((
                "SEM fractograph showing {ph}.",
                "SEM fractograph of the {m} specimen showing {ph}.",
                "Secondary electron image of the fracture surface of {m} with {ph}.",
            )).format(ph=p.phrase, m=m)
            if r.random() < 0.3:
                neg = negation_for(p.texture, r)
                p.negated = neg
                body = body[:-1] + f"; no {r.choice(NEG_WORDS[neg])} are visible."
            if fig.duplicate_of:
                body += f" Reprinted from Ref. [{r.randint(3, 30)}] with permission."
        elif fig.layout == "plot":
            body = f"Engineering stress–strain curves of the {m} specimens in the as-built and heat-treated conditions."
        elif fig.layout == "schematic":
            body = "Schematic of the specimen geometry (dimensions in mm)."
        elif fig.layout == "micrograph":
            body = f"Optical micrograph of the etched microstructure of {m} (Kroll's reagent)."
        else:
            body = f"Photograph of the servo-hydraulic test rig used for the {r.choice(TESTS)} tests."
        return f"{lead} {body}"
