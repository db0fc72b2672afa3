"""Stage 2, panels: split each mined figure into its lettered panels, each with its own caption part.

Usage:
    python -m dataset_builders.build --from-stage panels --to-stage panels

Reads stages/mine/<paper_id>/paper.json (PaperRecord) and writes stages/panels/<paper_id>.json
(PaperPanels), with cropped panel images in stages/panels/<paper_id>/; resumed while <paper_id>.key (this code's
fingerprint and its libraries' versions) is current, else split again ("code_resplit"): panel_records.

How a figure becomes panels:
- multi_raster (the PDF holds one image per panel): every part is a panel ("parts"); its letter is the
  letter the miner found printed next to it, else the nearest printed panel letter, else reading order when
  the caption names exactly as many panels as there are parts. The mined file is used as is.
- raster / vector (one image holding the whole figure): look for white gutters (rows or columns that
  are near-white from edge to edge of a region: mean grey > 240 and std < 12, which JPEG noise
  passes) with a recursive XY-cut on numpy projections of the grey pixels (dataset_builders.panel_grid; a
  figure on a dark background is searched on its negative). A clean grid (every cell a reasonable share of
  the figure) is split ("gutter") when
  * the caption names as many panels as there are cells: letters from letters printed in the PDF over the
    cells, else from the glyphs printed in the pixels (column-major layouts), else row-major order;
  * the caption names no panels or fewer, but every cell carries a printed letter a, b, … (PDF text, or glyphs
    set alike: same corner, same size): the printed letters win, since the caption parser missed some;
  * the caption's letters run to the n-th letter of n cells (one in the middle was missed: "(c)—"): row-major;
  * the caption names fewer panels than cells and its letters are printed alike in as many cells: the other
    cells (a legend, a colour bar cut off its plot) join their nearest lettered neighbour (panel_layout);
  * the caption names panels by roman numeral (reading order) or by position word (left/right, top/bottom,
    corners; by geometry): PanelRecord.name holds the name, letter stays None;
  * the caption names fewer panels than cells, and the surplus cells are small pieces of panels (call-outs,
    legend or title strips) or the cells are rows (columns) repeating one arrangement: panel_grid's
    join_small_cells / repeated_bands give one box per panel (docs/panels.md, rules 6 and 7).
  The caption names more panels than there are cells: panel_seams cuts abutting images along seams ("seam").
  Otherwise panel_layout gets a try (composites around a plot), else the whole figure stays one panel:
  "whole_unsure" when the caption names panels (the panel captions can not be scoped), "single" when it
  names none and no letters are printed on the cells -- such a grid's pieces could not be scoped, so each
  would inherit labels that belong to its neighbours.
Panel names in captions: captions.split_panel_captions for "(a)", else dataset_builders.panel_names (bare
and bold letters -- FigureRecord.caption_bold --, roman numerals, position words).
Every panel carries its box in the mined image's pixels (PanelRecord.box) and on the page (page_box).
Crops are written with their outer white margin trimmed, encoded as dataset_builders.jpeg says (the
source's own quantisation tables; grey when the figure is grey stored as RGB); an uncropped figure keeps
the mined file (no copy, no re-encode).
Each image is decoded once: hash and cues reuse those pixels. An image used as is (a part) is decoded
only for them, so a JPEG is decoded at reduced scale (jpeg.decode_for_statistics).
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from PIL import Image

from dataset_builders import jpeg
from dataset_builders.config import BuildConfig
from dataset_builders.image_cues import CUE_SIDE, compute_cues
from dataset_builders.panel_grid import Cell, find_grid, join_small_cells, repeated_bands
from dataset_builders.panel_layout import join_unlettered, read_letters, split_composite
from dataset_builders.panel_names import (
    ROMAN, fill_missed_letters, name_order, named_panels, names_for_cells, reading_order,
)
from dataset_builders.panel_seams import find_seam_cells
from dataset_builders.perceptual_hash import image_phash
from dataset_builders.records import (
    Box, FigurePart, FigureRecord, PanelRecord, PaperPanels, PaperRecord, Problem, SourceMeta, StageResult,
)
from dataset_builders.panel_records import (
    clear_stale, keep_summaries, record_key, resumed_outcome, resumed_outcomes, summaries, write_record,
)
from dataset_builders.stage_paths import StagePaths
from dataset_builders.workers import run_jobs
from fracto_core.files import read_model, write_bytes_atomic

STAGE = "panels"


# --- captions and excerpts -------------------------------------------------------------------------

def caption_parts(caption: str, bold: list[str] | None = None) -> tuple[str, dict[str, str]]:
    """(common part, {panel name: panel part}) of a caption: lower-case letters via
    captions.split_panel_captions, else the names panel_names reads (bare or bold letters, roman numerals,
    position words; `bold` = the caption's bold span texts, FigureRecord.caption_bold)."""
    if not caption.strip():
        return "", {}
    from dataset_builders.pdf.captions import split_panel_captions  # lazy: written by another stage owner

    common, parts = split_panel_captions(caption)
    if not parts:
        named = named_panels(caption, bold)
        if named:
            return named[0], named[1]
    return common, fill_missed_letters({k.lower(): v for k, v in parts.items()})


def is_letter(name: str) -> bool:
    return len(name) == 1 and name.isalpha()


def panel_caption(caption: str, common: str, parts: dict[str, str], letter: str | None) -> str:
    """The caption of one panel: common part + its own part, or the whole caption if it has none.

    A letter the caption names without text of its own gets only the common part: the whole caption
    would hand it its neighbours' features.
    """
    if letter is None or letter not in parts:
        return caption
    own = parts[letter].strip()
    common = common.strip()
    if not common or not own:
        return common or own
    if common.endswith((".", ":", ";")):
        return f"{common} {own}"
    return f"{common}: {own}"


def panel_excerpts(paper: PaperRecord, figure_number: str | None, letter: str | None,
                   whole_figure: bool) -> list[str]:
    """Texts of the excerpts citing this figure as a whole, or this panel's letter.

    A whole-figure panel (not split) also takes the excerpts citing any of its panels: it shows them.
    """
    if figure_number is None:
        return []
    texts: list[str] = []
    for ex in paper.excerpts:
        if ex.figure_number != figure_number:
            continue
        cited = {p.lower() for p in ex.panels}
        if (whole_figure or not cited or (letter is not None and letter in cited)) and ex.text not in texts:
            texts.append(ex.text)
    return texts


# --- geometry helpers ------------------------------------------------------------------------------

def _box_distance(point: tuple[float, float], box: Box) -> float:
    """Distance from a point to a rectangle (0 inside)."""
    x, y = point
    dx = max(box[0] - x, 0.0, x - box[2])
    dy = max(box[1] - y, 0.0, y - box[3])
    return math.hypot(dx, dy)


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _norm_letter(label: str | None) -> str | None:
    if label is None:
        return None
    s = label.strip().strip("()[].").lower()
    return s if len(s) == 1 and s.isalpha() else None


def assign_part_letters(figure: FigureRecord, caption_letters: list[str]) -> tuple[list[str | None], str]:
    """A letter (or None) for every part of a multi-part figure, and a note on how they were found."""
    parts = figure.parts
    letters: list[str | None] = []
    for part in parts:
        letter = _norm_letter(part.label)
        letters.append(letter if letter not in letters else None)
    how = ["printed labels"] if any(letters) else []
    missing = [i for i, l in enumerate(letters) if l is None]
    printed = [(l, box) for l, box in ((_norm_letter(l), b) for l, b in figure.panel_letters) if l]
    free = [(l, box) for l, box in printed if l not in letters]
    if missing and free:  # nearest printed letter, globally greedy so each letter goes to one part
        pairs = sorted((_box_distance(_centre(box), parts[i].bbox),
                        math.dist(_centre(box), parts[i].bbox[:2]), l, i)
                       for l, box in free for i in missing)
        for _, _, l, i in pairs:
            if letters[i] is None and l not in letters:
                letters[i] = l
        how.append("nearest printed letters")
    missing = [i for i, l in enumerate(letters) if l is None]
    remaining = [l for l in caption_letters if l not in letters]
    if missing and len(remaining) == len(missing):
        order = reading_order([parts[i].bbox for i in missing])
        for l, k in zip(remaining, order):
            letters[missing[k]] = l
        how.append("reading order of caption letters")
    missing = [i for i, l in enumerate(letters) if l is None]
    note = f"{len(parts)} embedded images; letters from " + (", ".join(how) if how else "nothing")
    if missing:
        note += f"; {len(missing)} part(s) without a letter"
    return letters, note


def letters_from_printed(cells: list[Cell], part: FigurePart, size: tuple[int, int],
                         printed: list[tuple[str, Box]], wanted: list[str]) -> list[str] | None:
    """Cell letters from letters printed in the PDF over the figure, if they match one-to-one."""
    letters = [(_norm_letter(l), box) for l, box in printed]
    letters = [(l, box) for l, box in letters if l]
    if sorted(l for l, _ in letters) != sorted(wanted):
        return None
    bx0, by0, bx1, by1 = part.bbox
    if bx1 <= bx0 or by1 <= by0:
        return None
    sx, sy = size[0] / (bx1 - bx0), size[1] / (by1 - by0)
    owner: list[str | None] = [None] * len(cells)
    for letter, box in letters:
        cx, cy = _centre(box)
        point = ((cx - bx0) * sx, (cy - by0) * sy)
        k = min(range(len(cells)), key=lambda i: (_box_distance(point, cells[i]), i))
        if owner[k] is not None:
            return None
        owner[k] = letter
    return owner if all(owner) else None  # type: ignore[return-value]


# --- one paper -------------------------------------------------------------------------------------

class _PaperContext:
    """What every panel of one paper shares."""

    def __init__(self, paths: StagePaths, paper: PaperRecord):
        self.paths = paths
        self.paper = paper
        self.image_dir = paths.panels / paper.paper_id

    def panel(self, figure: FigureRecord, *, panel_id: str, letter: str | None, image_rel: str,
              pixels: Image.Image, method: str, note: str, caption: str, whole_figure: bool,
              size: tuple[int, int] | None = None, box: tuple[int, int, int, int] | None = None,
              part: FigurePart | None = None, name: str | None = None, grey: Image.Image | None = None,
              ) -> PanelRecord:
        """size: the image's own size when pixels is a reduced copy (decode_for_statistics); box: where the panel
        sits in the mined image `part` (default: all of it), also on the page via the part's bbox; grey:
        pixels.convert("L") when the caller has it (the hash's input, not made twice)."""
        width, height = size or pixels.size
        part = part or figure.parts[0]
        box = box or (0, 0, part.width, part.height)
        return PanelRecord(
            panel_id=panel_id, figure_id=figure.figure_id, paper_id=self.paper.paper_id,
            source_pdf=self.paper.source_pdf, page=figure.page, letter=letter, image=image_rel,
            width=width, height=height, split_method=method, split_note=note, name=name,
            box=box, page_box=page_box(box, part),
            caption=caption, figure_caption=figure.caption, figure_number=figure.number,
            excerpts=panel_excerpts(self.paper, figure.number, letter, whole_figure), context=figure.context,
            phash=image_phash(pixels if grey is None else grey), cues=compute_cues(pixels),
        )


def page_box(box: tuple[int, int, int, int], part: FigurePart) -> Box | None:
    """A pixel box of a part's image on the PDF page (points, rounded to 0.01), None without a page box."""
    bx0, by0, bx1, by1 = part.bbox
    if bx1 <= bx0 or by1 <= by0 or part.width <= 0 or part.height <= 0:
        return None
    sx, sy = (bx1 - bx0) / part.width, (by1 - by0) / part.height
    return (round(bx0 + box[0] * sx, 2), round(by0 + box[1] * sy, 2),
            round(bx0 + box[2] * sx, 2), round(by0 + box[3] * sy, 2))


def _parts_panels(ctx: _PaperContext, figure: FigureRecord, common: str, parts_text: dict[str, str]
                  ) -> tuple[list[PanelRecord], list[Problem]]:
    names: list[str | None] = [None] * len(figure.parts)
    if parts_text and not all(is_letter(k) for k in parts_text):  # roman numerals or position words
        letters: list[str | None] = [None] * len(figure.parts)
        found = names_for_cells(sorted(parts_text, key=name_order), [p.bbox for p in figure.parts])
        note = f"{len(figure.parts)} embedded images; " + (
            "named by the caption's roman numerals or position words" if found
            else "the caption's panel names do not fit them")
        names = found or names
    else:
        letters, note = assign_part_letters(figure, sorted(parts_text))
    panels: list[PanelRecord] = []
    problems: list[Problem] = []
    for i, (part, letter, name) in enumerate(zip(figure.parts, letters, names)):
        try:
            pixels, size = jpeg.decode_for_statistics(ctx.paths.abs(part.image), CUE_SIDE)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a per-image problem
            problems.append(_image_problem(ctx.paper, figure, part.image, exc))
            continue
        key = letter or name
        panel_id = f"{figure.figure_id}-{_id_part(key)}" if key else f"{figure.figure_id}-part{i + 1}"
        panels.append(ctx.panel(figure, panel_id=panel_id, letter=letter, image_rel=part.image, pixels=pixels,
                                method="parts", note=note, caption=panel_caption(figure.caption, common,
                                                                                  parts_text, key),
                                whole_figure=False, size=size, part=part, name=name))
    return panels, problems


def _id_part(name: str) -> str:
    return name.replace(" ", "-")


def _cell_letters(grey: Image.Image, cells: list[Cell], part: FigurePart, size: tuple[int, int],
                  printed: list[tuple[str, Box]], wanted: list[str], strict: bool = False
                  ) -> tuple[list[str] | None, str]:
    """Cell letters from letters printed over the figure in the PDF, else from the glyphs in its pixels.

    strict (the caption does not vouch for these letters): every cell must show its glyph, all in the same
    corner at about the same size (panel_layout.read_letters, placed) -- with two candidates, a tick label or
    an axis title in a plot's corner matches one of them often enough.
    """
    letters = letters_from_printed(cells, part, size, printed, wanted)
    if letters:
        return letters, "printed letters"
    letters = read_letters(np.asarray(grey), cells, wanted, placed=strict)
    if letters and sorted(letters) == sorted(wanted):
        return letters, "glyphs read in the pixels"
    return None, ""


def _first_letters(n: int) -> list[str]:
    return [chr(ord("a") + i) for i in range(min(n, 26))]


def _fewer_panels(cells: list[Cell], n: int, size: tuple[int, int]) -> tuple[list[Cell], str] | None:
    """n panels in reading order out of more gutter cells, by the layout rules of panel_grid (small pieces
    join their panel; repeated rows or columns are one panel each), with how; None when neither holds."""
    joined = join_small_cells(cells, n)
    how = f"the {len(cells) - n} small cell(s) joined to their panels"
    if joined is None:
        joined = repeated_bands(cells, n, size)
        how = f"{len(cells)} cells in {n} repeated rows or columns, one panel each"
    if joined is None:
        return None
    return [joined[i] for i in reading_order(joined)], how


def _single_image_panels(ctx: _PaperContext, figure: FigureRecord, common: str, parts_text: dict[str, str]
                         ) -> tuple[list[PanelRecord], list[Problem]]:
    part = figure.parts[0]
    try:
        pixels, tables = jpeg.decode(ctx.paths.abs(part.image))
    except Exception as exc:  # noqa: BLE001
        return [], [_image_problem(ctx.paper, figure, part.image, exc)]
    grey = pixels if pixels.mode == "L" else pixels.convert("L")
    grid = find_grid(grey)
    lettered = all(is_letter(k) for k in parts_text)
    wanted = sorted(parts_text) if lettered else []
    n_cells = len(grid.cells)
    clean = not grid.problem and n_cells > 1
    whole_id = f"{figure.figure_id}-whole"

    def whole(method: str, note: str) -> list[PanelRecord]:
        return [ctx.panel(figure, panel_id=whole_id, letter=None, image_rel=part.image, pixels=pixels, grey=grey,
                          method=method, note=note, caption=figure.caption, whole_figure=True)]

    names: list[str | None] = []
    if parts_text and not lettered:  # roman numerals, position words: a clean grid of as many cells
        found = names_for_cells(sorted(parts_text, key=name_order), grid.cells) if clean else None
        if not found:
            listed = ", ".join(sorted(parts_text, key=name_order))
            why = grid.problem or f"found {n_cells} cell(s) between gutters that do not fit them"
            return whole("whole_unsure", f"caption names panels ({listed}) but {why}"), []
        method, cells, names, letters = "gutter", grid.cells, found, [None] * n_cells
        how = "the caption's roman numerals in reading order" if all(n in ROMAN for n in parts_text) \
            else "the caption's position words, by geometry"
    elif clean and len(wanted) == n_cells:
        method, cells = "gutter", grid.cells
        letters, how = _cell_letters(grey, cells, part, pixels.size, figure.panel_letters, wanted)
        letters, how = (letters, how) if letters else (wanted, "row-major order")
    elif clean and (len(wanted) < 2 or set(wanted) <= set(_first_letters(n_cells))) and (
            trusted := _cell_letters(grey, grid.cells, part, pixels.size, figure.panel_letters,
                                     _first_letters(n_cells), strict=True))[0]:
        # a clean grid whose cells carry printed letters a.. one each: trusted over a caption that names no
        # panels or fewer (a letter its parser missed); letters the caption does not give text get the common part
        method, cells, (letters, how) = "gutter", grid.cells, trusted
        how += f" (the caption names {len(wanted)} of them)"
    elif clean and len(wanted) >= 2 and set(wanted) <= set(_first_letters(n_cells)) and \
            wanted[-1] == _first_letters(n_cells)[-1]:
        # the caption's letters run to the n-th letter of n clean cells: only letters inside the run were
        # missed by the parser ("(c)—"), so the cells are the panels a.. in reading order
        method, cells, letters = "gutter", grid.cells, _first_letters(n_cells)
        how = f"row-major order (the caption names {', '.join(wanted)})"
    elif clean and len(wanted) >= 2 and n_cells > len(wanted) and (
            joined := join_unlettered(np.asarray(grey), grid.cells, wanted)):
        method, (cells, letters) = "gutter", joined
        how = f"glyphs read in the pixels; the {n_cells - len(wanted)} unlettered cell(s) joined to their neighbours"
        n_cells = len(cells)
    elif clean and len(wanted) >= 2 and n_cells > len(wanted) and (
            grouped := _fewer_panels(grid.cells, len(wanted), pixels.size)):
        method, (cells, how) = "gutter", grouped
        letters, read = _cell_letters(grey, cells, part, pixels.size, figure.panel_letters, wanted)
        letters, how = (letters, f"{read}; {how}") if letters else (wanted, f"row-major order; {how}")
        n_cells = len(cells)
    elif len(wanted) < 2:
        named = f"the caption names only panel ({wanted[0]})" if wanted else "the caption names no panels"
        if n_cells > 1:
            note = f"{n_cells}-cell gutter grid found but {named} and no letters are printed on its cells; kept whole"
        else:
            note = f"{named} and no gutters were found"
        return whole("single", note), []
    elif not grid.problem and n_cells < len(wanted) and (
            seams := find_seam_cells(np.asarray(grey), grid.cells, len(wanted))):
        method, cells = "seam", [seams[i] for i in reading_order(seams)]
        letters, how = _cell_letters(grey, cells, part, pixels.size, figure.panel_letters, wanted)
        how = f"{len(cells)} cells cut along seams (abutting images, thin separator lines) in {n_cells} gutter " \
              f"cell(s); letters by {how if letters else 'row-major order'}"
        letters, n_cells = letters or wanted, len(cells)
    else:
        found = grid.problem or ("no gutters found" if n_cells <= 1 else f"found {n_cells} cells between white gutters")
        # === the one hand-off to panel_layout: composites the white-gutter grid cannot cut ===
        layout = split_composite(grey, wanted)
        if layout is None or (layout.letters is None and not (
                letters := letters_from_printed(layout.cells, part, pixels.size, figure.panel_letters, wanted))):
            why = "" if layout is None else f"; {layout.note}"
            return whole("whole_unsure", f"caption names {len(wanted)} panels ({', '.join(wanted)}) but {found}{why}"), []
        method, cells, n_cells = "layout", layout.cells, len(layout.cells)
        how = layout.note if layout.letters else f"{layout.note}; printed letters"
        letters = layout.letters or letters
    if jpeg.is_grey_rgb(pixels):  # a grey figure stored as RGB: its crops are written grey (jpeg.py)
        pixels = grey
    panels: list[PanelRecord] = []
    for cell, letter, name in zip(cells, letters, names or [None] * len(cells)):
        crop = pixels.crop(cell)
        panel_id = f"{figure.figure_id}-{_id_part(letter or name)}"
        target = ctx.image_dir / f"{panel_id}.jpg"
        write_bytes_atomic(target, jpeg.encode(crop, tables), durable=False)
        note = f"{n_cells} cells between white gutters; {'names' if names else 'letters'} by {how}; crop {cell}" \
            if method == "gutter" else f"{how}; crop {cell}"
        key = letter or name
        caption = panel_caption(figure.caption, common, parts_text, key) if key in parts_text or not parts_text \
            else common or figure.caption  # a letter the caption gives no text: its common part only
        panels.append(ctx.panel(figure, panel_id=panel_id, letter=letter, image_rel=ctx.paths.rel(target),
                                pixels=crop, grey=grey.crop(cell) if crop.mode != "L" else None, method=method,
                                note=note, caption=caption,
                                whole_figure=False, box=tuple(int(v) for v in cell), name=name))
    return panels, []


def _image_problem(paper: PaperRecord, figure: FigureRecord, image: str, exc: Exception) -> Problem:
    return Problem(file=paper.source_pdf, stage=STAGE, reason="unreadable_image", paper_id=paper.paper_id,
                   item_id=figure.figure_id, detail=f"{image}: {type(exc).__name__}: {exc}")


def figure_panels(paths: StagePaths, paper: PaperRecord, figure: FigureRecord
                  ) -> tuple[list[PanelRecord], list[Problem]]:
    """The panels of one figure (crops written to disk) and the problems met."""
    ctx = _PaperContext(paths, paper)
    if not figure.parts:
        return [], [Problem(file=paper.source_pdf, stage=STAGE, reason="no_image", paper_id=paper.paper_id,
                            item_id=figure.figure_id, detail=f"figure {figure.figure_id} has no image part")]
    common, parts_text = caption_parts(figure.caption, figure.caption_bold)
    if figure.kind == "multi_raster" or len(figure.parts) > 1:
        return _parts_panels(ctx, figure, common, parts_text)
    return _single_image_panels(ctx, figure, common, parts_text)


def process_paper(job: tuple[str, str, str]) -> tuple[str, dict[str, int], list[Problem]]:
    """Write one paper's panels JSON (+ crops) for job (out, paper.json, key of this code); returns (paper_id or "",
    counts, problems)."""
    out, paper_json, key = job
    paths = StagePaths(Path(out))
    target = paths.panels / f"{Path(paper_json).parent.name}.json"  # mine writes stages/mine/<paper_id>/paper.json
    if (resumed := resumed_outcome(target, key)) is not None:
        return target.stem, *resumed
    counts = clear_stale(paths, target, key)
    try:
        paper = read_model(Path(paper_json), PaperRecord)
    except Exception as exc:  # noqa: BLE001 - a broken record is a problem, not a crash
        rel = paths.rel(Path(paper_json))
        return "", {"papers_failed": 1}, [Problem(file=rel, stage=STAGE, reason="bad_paper_record",
                                                  detail=f"{type(exc).__name__}: {exc}", severity="failed")]
    panels: list[PanelRecord] = []
    problems: list[Problem] = []
    for figure in paper.figures:
        try:
            got, probs = figure_panels(paths, paper, figure)
        except Exception as exc:  # noqa: BLE001 - one odd figure must not stop the paper (or the build)
            got, probs = [], [Problem(file=paper.source_pdf, stage=STAGE, reason="figure_failed",
                                      paper_id=paper.paper_id, item_id=figure.figure_id, severity="failed",
                                      detail=f"{type(exc).__name__}: {exc}")]
        problems.extend(probs)
        panels.extend(p for _, p in sorted(enumerate(got),
                                           key=lambda ip: (ip[1].letter is None, ip[1].letter or "", ip[0])))
    record = PaperPanels(paper_id=paper.paper_id, source_pdf=paper.source_pdf, panels=panels, problems=problems,
                         **paper.model_dump(include=set(SourceMeta.model_fields)))
    write_record(target, record, key)
    counts |= {"papers": 1, "figures": len(paper.figures), "panels": len(panels)}
    for p in panels:
        counts[f"split_{p.split_method}"] = counts.get(f"split_{p.split_method}", 0) + 1
    return paper.paper_id, counts, problems


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Split every mined paper's figures into panels (parallel over papers, resumable per paper: panel_records
    finds the resumed papers here, only the others go to the workers)."""
    key = record_key()
    jobs = [(str(paths.out), str(p), key) for p in sorted(paths.mine.glob("*/paper.json"))]
    paths.panels.mkdir(parents=True, exist_ok=True)
    ids = [Path(p).parent.name for _, p, _ in jobs]
    with ExitStack() as stack:
        kept = summaries(paths, key, stack)
        outcomes: list = resumed_outcomes(paths, ids, key, kept)
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
        for i, (_, counts, problems) in zip(todo, run_jobs(process_paper, [jobs[i] for i in todo], config.workers,
                                                           "panels", "paper", progress)):
            outcomes[i] = counts, problems
        keep_summaries(paths, ids, outcomes, kept)
    result = StageResult(stage=STAGE, counts=dict.fromkeys(("papers", "papers_resumed", "papers_failed", "figures",
                                                             "panels"), 0))
    for counts, problems in outcomes:  # in job order, as the pool's results came
        result.counts.update({name: result.counts.get(name, 0) + value for name, value in counts.items()})
        result.problems.extend(problems)
    return result
