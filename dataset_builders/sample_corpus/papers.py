"""The paper maker: one sample paper as a PDF (bytes) and its ground truth.

It plans the figures (``figures``), writes the body text citing them in the styles real papers use
("Fig. 2b", "Fig. 2(b)", "Figs. 2a and 2c", "Fig. 2(a, b)", "Figure 3", "Fig. 4a–c", "Figs. 4(a)–(c)",
"Fig. 3 (left)", "Figures 2 and 4"), worded as real papers word it (``wording``: paraphrases, abbreviations
defined in the introduction, hedges, negations in many forms) with filler around it, lays the blocks out on
2-5 A4 pages in one column (even papers) or two (odd papers; ``blocks``), draws every page with the
publisher header, and records which sentence on which page cites which figure and panels with which
features (asserted, denied, hedged, as an expert reads them).
"""

from __future__ import annotations

import io
import random

import numpy as np
import pymupdf
from PIL import Image, ImageDraw, ImageFont

from fracto_core.vocabulary import can_show, sort_features

from .blocks import Block, paper_blocks, place_blocks
from .figure_drawing import draw_figure
from .figures import Figure, FigurePlanner, Reprintable
from .page_layout import (BODY_FS, BODY_LEAD, BOTTOM, COL_W, FIXED_DATE, PAGE, X0, X1, flush_text, put_text,
                          text_width, wrap)
from .text import (CLASS_FILLER, FILLER, INITIALS, JOURNAL, MATERIALS, PROCESSES, SURNAMES, TESTS, Sentence,
                   negation_for)
from .textures import KINDS, kind_allowed
from .truth import TruthCitation, TruthFigure, TruthPaper
from .wording import ABBREVIATIONS, DISTRACTORS, Wording, definitions_sentence, hedgeable


class PaperMaker:
    """Builds one paper: plans figures and text, lays them out, draws the PDF, records the truth."""

    def __init__(self, index: int, seed: int, reprint: tuple[Reprintable, str] | None, logo: bytes,
                 icon: bytes):
        self.index, self.seed = index, seed
        self.stem = f"paper_{index:03d}"
        self.r = random.Random(f"{seed}:paper:{index}")
        self.rng = np.random.default_rng([seed, index])
        # a reprinted fractograph must be of a material that can show its features (issue 27)
        self.material = self.r.choice([m for m in MATERIALS if reprint is None
                                       or kind_allowed(reprint[0].texture, MATERIALS[m])])
        self.material_class = MATERIALS[self.material]
        self.columns = 2 if index % 2 else 1
        definable = sorted(a for a, (feat, _, _) in ABBREVIATIONS.items() if can_show(feat, self.material_class))
        picked = self.r.sample(definable, min(len(definable), self.r.randint(1, 3)))
        self.abbreviations = {a: ABBREVIATIONS[a][0] for a in picked}  # defined in the introduction
        self.wording = Wording(self.r, self.abbreviations)
        self._last_fracture: int | None = None
        self.logo, self.icon = logo, icon
        self.plans = FigurePlanner(index, self.stem, self.r, self.rng, self.material, reprint, self.wording,
                                   self.columns)
        self.figures: list[Figure] = []
        self.reprintables: list[Reprintable] = []
        self._filler_pool: list[str] = []

    # -- text ------------------------------------------------------------------------------------

    def _ref(self, number: int, letters: list[str], fig: Figure | None = None) -> str:
        r = self.r
        if not letters:
            return r.choice(("Fig. {n}", "Figure {n}", "Fig. {n}")).format(n=number)
        if len(letters) == 1:
            forms = ["Fig. {n}{a}", "Fig. {n}({a})", "Figure {n}{a}"]
            if fig is not None and fig.layout == "grid" and fig.grid == (1, 2):
                forms.append("Fig. {n} ({side})")  # a side-by-side pair cited by position
            return r.choice(forms).format(n=number, a=letters[0], side="left" if letters[0] == "a" else "right")
        if len(letters) == 2:
            a, b = letters
            return r.choice(("Figs. {n}{a} and {n}{b}", "Fig. {n}{a},{b}", "Fig. {n}({a}, {b})")).format(
                n=number, a=a, b=b)
        return r.choice(("Fig. {n}{a}–{b}", "Figs. {n}({a})–({b})")).format(n=number, a=letters[0], b=letters[-1])

    def citing_sentences(self, fig: Figure) -> list[Sentence]:
        r = self.r
        words = self.wording
        n = fig.number
        if fig.layout == "plot":
            return [Sentence(f"The engineering stress–strain curves are plotted in {self._ref(n, [])}.", n)]
        if fig.layout == "schematic":
            return [Sentence(f"The specimen geometry is given in {self._ref(n, [])}.", n)]
        if fig.layout == "micrograph":
            return [Sentence(f"The etched microstructure ({self._ref(n, [])}) consists of fine grains.", n)]
        if fig.layout == "photo":
            return [Sentence(f"The test set-up is shown in {self._ref(n, [])}.", n)]
        if fig.layout == "distractor":  # fracture words in another sense: no feature
            return [Sentence(r.choice(DISTRACTORS[fig.panels[0].texture][1]).format(ref=self._ref(n, [])), n)]
        out: list[Sentence] = []
        if fig.layout == "single":
            p = fig.panels[0]
            ph = words.phrase(p.texture)
            ref = self._ref(n, [])
            out.append(Sentence(r.choice((f"As shown in {ref}, the fracture surface exhibits {ph}.",
                                          f"The fracture surface in {ref} is dominated by {ph}.")),
                                n, [], list(KINDS[p.texture].features)))
            if r.random() < 0.5:
                neg = negation_for(p.texture, r)
                out.append(Sentence(words.sentence_negation(neg, self._ref(n, [])), n, [], [], [neg]))
            if self._last_fracture is not None and r.random() < 0.5:  # "Figures 2 and 4"
                out.append(Sentence(f"The fracture surfaces in Figures {self._last_fracture} and {n} were imaged "
                                    "at the same magnification.", self._last_fracture, others=[n]))
            self._last_fracture = n
            return out
        panels = fig.panels
        first = panels[0]
        ref = self._ref(n, [first.letter], fig)  # type: ignore[list-item]
        out.append(Sentence(f"{ref[0].upper()}{ref[1:]} reveals {words.phrase(first.texture)}.", n,
                            [first.letter], list(KINDS[first.texture].features)))  # type: ignore[list-item]
        if len(panels) >= 3 and r.random() < 0.6:
            out.append(Sentence(f"Several morphologies coexist, as shown in {self._ref(n, [p.letter for p in panels[:3]])}.",  # type: ignore[misc]
                                n, [p.letter for p in panels[:3]]))  # type: ignore[misc]
        if len(panels) >= 3:
            a, c = panels[0], panels[2]
            out.append(Sentence(
                f"{self._ref(n, [a.letter, c.letter])} show {words.phrase(a.texture)} and "  # type: ignore[list-item]
                f"{words.phrase(c.texture)}, respectively.", n, [a.letter, c.letter],  # type: ignore[list-item]
                sorted(set(KINDS[a.texture].features) | set(KINDS[c.texture].features))))
        p = panels[1]
        neg = negation_for(p.texture, r)
        out.append(Sentence(words.sentence_negation(neg, self._ref(n, [p.letter], fig)),  # type: ignore[list-item]
                            n, [p.letter], [], [neg]))  # type: ignore[list-item]
        q = panels[-1]
        if r.random() < 0.4 and (h := hedgeable(set(KINDS[q.texture].features) | {neg}, r, self.material_class)):
            ref = self._ref(n, [q.letter], fig)  # type: ignore[list-item]
            out.append(Sentence(f"{ref[0].upper()}{ref[1:]} also contains {words.hedge(h)}.", n,
                                [q.letter], hedged=[h]))  # type: ignore[list-item]
        self._last_fracture = n
        return out

    def filler(self, k: int) -> list[Sentence]:
        """k filler sentences, without repeats within a paper until the bank is used up."""
        if len(self._filler_pool) < k:
            self._filler_pool = [*FILLER, *CLASS_FILLER[self.material_class]]
            self.r.shuffle(self._filler_pool)
        picks, self._filler_pool = self._filler_pool[:k], self._filler_pool[k:]
        return [Sentence(s.format(material=self.material, n=self.r.randint(9, 40))) for s in picks]

    # -- layout and drawing ----------------------------------------------------------------------

    def build(self) -> tuple[bytes, TruthPaper]:
        r = self.r
        self.plans.plan_figures()
        self.figures, self.reprintables = self.plans.figures, self.plans.reprintables
        title = r.choice((
            "Fractographic analysis of {p} {m} under {t}",
            "On the failure mechanisms of {p} {m} in {t}",
            "Microstructure and fracture behaviour of {p} {m}: a {t} study",
        )).format(p=r.choice(PROCESSES[self.material_class]), m=self.material, t=r.choice(TESTS))
        title = title[0].upper() + title[1:]
        authors = [f"{r.choice(INITIALS)}. {name}" for name in r.sample(SURNAMES, r.randint(2, 5))]
        doi = f"https://doi.org/10.5555/fracto.{self.seed}.{self.index}"
        abstract = " ".join(s.text for s in self.filler(3)) + (
            f" The fracture surfaces of {self.material} were examined by scanning electron microscopy"
            " and the failure mechanisms are discussed.")
        intro = self.filler(r.randint(3, 4))
        if self.abbreviations:
            intro.insert(1, Sentence(definitions_sentence(self.abbreviations, self.material)))
        paragraphs: list[list[Sentence]] = [intro]
        for fig in self.figures:
            paragraphs.append(self.filler(r.randint(1, 2)) + self.citing_sentences(fig)
                              + self.filler(r.randint(0, 2)))
        paragraphs.append(self.filler(r.randint(2, 4)))
        blocks = paper_blocks(title, authors, doi, abstract, paragraphs, self.figures, self.columns)
        pages = place_blocks(blocks, self.columns)
        if len(pages) > 5:  # keep papers to 2-5 pages: drop the filler-only closing paragraph
            blocks = [b for b in blocks if not b.droppable]
            pages = place_blocks(blocks, self.columns)
        while len(pages) < 2:
            width = X1 - X0 if self.columns == 1 else COL_W
            extra = Block("text", lines=wrap(" ".join(s.text for s in self.filler(4)), width, BODY_FS),
                          size=BODY_FS, lead=BODY_LEAD, gap_after=6, droppable=True, span=self.columns == 1)
            blocks.append(extra)
            pages = place_blocks(blocks, self.columns)
        return self._draw(title, authors, doi, blocks, pages)

    def _header(self, page: pymupdf.Page, pno: int, logo_xref: int) -> int:
        xref = page.insert_image(pymupdf.Rect(X0, 26, X0 + 58, 52), stream=self.logo if not logo_xref else None,
                                 xref=logo_xref)
        put_text(page, (X0 + 66, 42), f"{JOURNAL} · Vol. 12 (2026)", fontname="F1", fontsize=8,
                 color=(0.25, 0.25, 0.25))
        page.draw_line((X0, 58), (X1, 58), color=(0.6, 0.6, 0.6), width=0.5)
        put_text(page, ((X0 + X1) / 2 - 3, 818), str(pno), fontname="F1", fontsize=8)
        return xref

    def _draw(self, title, authors, doi, blocks, pages) -> tuple[bytes, TruthPaper]:
        doc = pymupdf.open()
        logo_xref = 0
        citations: list[TruthCitation] = []
        figures: list[TruthFigure] = []
        for pno, placements in enumerate(pages, 1):
            page = doc.new_page(width=PAGE.width, height=PAGE.height)
            logo_xref = self._header(page, pno, logo_xref)
            for block, first, y, x in placements:
                if block.kind == "figure":
                    figures.append(draw_figure(page, pno, block, y, self.plans, x))
                    continue
                fit = int((BOTTOM - y) // block.lead)
                lines = block.lines[first:first + fit]
                for k, (_, line) in enumerate(lines):
                    baseline = y + (k + 1) * block.lead - block.lead * 0.25
                    put_text(page, (x, baseline), line, fontname="F2" if block.bold else "F1",
                             fontsize=block.size, color=(0.1, 0.2, 0.6) if block.doi else (0, 0, 0))
                    if block.doi and self.index % 3 == 0 and k == 0:  # tiny open-access icon after the DOI
                        ix = x + text_width(line, block.size) + 4
                        page.insert_image(pymupdf.Rect(ix, y + 1, ix + 9, y + 10), stream=self.icon)
                if block.sentences:
                    end = lines[-1][0] + len(lines[-1][1]) if lines else 0
                    start = lines[0][0] if lines else 0
                    for off, s in block.sentences:
                        if s.figure is not None and start <= off < end + 1:
                            for number in (s.figure, *s.others):
                                citations.append(TruthCitation(
                                    text=s.text, page=pno, figure=number, panels=s.panels,
                                    features=sort_features(s.features), negated=sort_features(s.negated),
                                    hedged=sort_features(s.hedged)))
            flush_text(page)
        doc.set_metadata({"title": title, "author": "; ".join(authors), "subject": doi,
                          "creator": "fracto sample_corpus", "producer": "PyMuPDF",
                          "creationDate": FIXED_DATE, "modDate": FIXED_DATE, "keywords": "", "trapped": ""})
        n_pages = doc.page_count
        data = doc.tobytes(garbage=3, deflate=True, no_new_id=True)
        doc.close()
        figures.sort(key=lambda f: f.number)
        citations.sort(key=lambda c: (c.page, c.figure))
        truth = TruthPaper(file=f"papers/{self.stem}.pdf", index=self.index, title=title, authors=authors, doi=doi,
                           n_pages=n_pages, columns=self.columns, abbreviations=self.abbreviations,
                           material=self.material, figures=figures, citations=citations)
        return data, truth


# --- publisher artwork (the same bytes on every page of every paper) ------------------------------

def publisher_logo() -> bytes:
    """Publisher logo: 240x104 px, big enough in pixels that only its repetition marks it as a logo."""
    img = Image.new("RGB", (240, 104), (236, 112, 20))
    draw = ImageDraw.Draw(img)
    draw.ellipse((12, 12, 92, 92), fill=(255, 255, 255))
    draw.rectangle((40, 30, 64, 74), fill=(236, 112, 20))
    draw.text((104, 28), "JSF", fill=(255, 255, 255), font=ImageFont.load_default(size=44))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def open_access_icon() -> bytes:
    """A tiny 16x16 open-access style icon."""
    img = Image.new("RGB", (16, 16), (255, 255, 255))
    ImageDraw.Draw(img).ellipse((1, 1, 14, 14), fill=(246, 130, 31))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
