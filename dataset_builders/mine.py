"""Stage 1, mine: figures, captions, panel letters, citing excerpts, title and DOI from each PDF.

Reads every file under ``config.papers`` (the papers folder, recursively); writes
OUT/stages/mine/<paper_id>/paper.json (a PaperRecord) and that paper's figure images beside it. Files that
are not PDFs, or that cannot be mined, become Problems in the stage result.
A paper whose paper.json exists is resumed while its key (stages/mine/<paper_id>/paper.key, stage_cache: a
fingerprint of this module, the modules it imports and the settings in MINE_SETTINGS) is current; one mined by
other code (a changed rule) or another PyMuPDF is mined and split into panels again, the counts say
``code_remined``. So is one mined while Tesseract was missing (``PaperRecord.ocr == "unavailable"``) once
Tesseract is there: ``ocr_remined``. The records of a PDF gone from the papers folder are deleted (``removed``).
What a resumed record reports is read from stages/mine_resumed.tsv while it is the same file (resume_summaries).

Usage (alone): python -c "from dataset_builders import mine; ..." -- normally run by
``python -m dataset_builders.build``.

Per page the miner pays for one MuPDF text pass with image placements, and a second without them (the text)
only on pages that place images (``pdf.images.page_text_and_graphics``); vector drawings are looked at (``get_bboxlog``, far cheaper than
``get_drawings``) only on pages with a figure caption that no embedded image can explain. The layout
analysis lives in ``dataset_builders.pdf``: text (lines, caption blocks), images (xrefs, writing),
figures (clustering, caption matching, panel letters), metadata (title, DOI), geometry (box helpers).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pymupdf

from dataset_builders.config import BuildConfig
from dataset_builders.pdf.background import BackgroundProbe
from dataset_builders.fetch.manifest import ManifestIndex, paper_files
from dataset_builders.pdf.captions import cite_excerpts
from dataset_builders.pdf.continued import PageFlow, link_continued
from dataset_builders.pdf.file_check import check_files, classify_non_pdf, paper_id_of, shown_name  # noqa: F401 (re-exported for tests)
from dataset_builders.pdf.figures import (
    MIN_BBOX_PT,
    Cluster,
    assemble_figures,
    drawing_regions,
    in_figure_text_box,
    label_parts,
    match_far_captions,
    panel_letters,
    separate_uncaptioned,
)
from dataset_builders.pdf.geometry import box_height, box_width, expand, overlap_area, round_box
from dataset_builders.pdf.images import Graphic, ImageWriter, is_repeated, page_text_and_graphics, repeated_keys
from dataset_builders.pdf.licence import pdf_licence
from dataset_builders.pdf.metadata import find_doi, find_title
from dataset_builders.pdf.ocr import bare_page, read_bare_pages, tessdata
from dataset_builders.pdf.ocr_text import join_caption_labels, restore_chapter_dots
from dataset_builders.pdf import page_text
from dataset_builders.pdf.rotation import upright
from dataset_builders.pdf.scan import scan_graphics, scan_page_image
from dataset_builders.pdf.text import TEXT_FLAGS, Caption, TextBlock, find_captions, join_lines, page_blocks
from dataset_builders.pdf.word import citable_chunks, drop_margin_comments
from dataset_builders.mine_records import forget_paper, forget_removed, resumable
from dataset_builders.records import (
    Excerpt,
    FigurePart,
    FigureRecord,
    PaperRecord,
    Problem,
    SkippedGraphic,
    SourceMeta,
    StageResult,
)
from dataset_builders.resume_summaries import ResumeSummaries
from dataset_builders.sources import apply_source, refresh_source
from dataset_builders.stage_cache import StageKeys, key_file, library_versions, record_is_current, write_record_key
from dataset_builders.stage_paths import StagePaths
from dataset_builders.workers import run_jobs
from fracto_core.files import write_model_atomic

STAGE = "mine"
# the settings a paper record depends on (part of its key; build.py refuses to mix them without --fresh)
MINE_SETTINGS = ("render_dpi", "min_figure_px", "max_image_pixels", "excerpt_chars", "ocr")


# --- one paper -------------------------------------------------------------------------------------

@dataclass
class PageData:
    number: int  # 1-based
    blocks: list[TextBlock]
    graphics: list[Graphic]
    rect: pymupdf.Rect  # page.rect read once: each read is a MuPDF call (~8 us; heavy corpus 5,600 -> 1,600)
    doc_captioned: bool = True  # does the document caption any figure (set once all pages are read)


@dataclass
class MineOutcome:
    """What one worker returns for one PDF (problems already in report form)."""

    problems: list[Problem]
    counts: dict[str, int]
    summary: str = ""  # of the record written (resume_summaries), kept by the stage for the next build


def mine_paper(pdf: Path, source_rel: str, paper_id: str, out: Path, config: BuildConfig,
               source: SourceMeta | None = None) -> MineOutcome:
    """Mine one PDF into ``out/stages/mine/<paper_id>/`` (images first, paper.json last).

    source: the fetch manifest's record of this PDF (DOI, title, authors, licence ...), which wins over what
    the PDF says; without one, the licence is the PDF's own statement (XMP rights, page 1) or "unknown".
    """
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
        record, page_errors, unread = _mine_document(doc, source_rel, paper_id, folder, rel_folder, config)
        if page_errors:
            problems.append(_problem(source_rel, "truncated_or_corrupt",
                                     f"unreadable page(s) {', '.join(map(str, page_errors))}; the rest was mined",
                                     paper_id))
        problems += [_problem(source_rel, "scan_without_text_layer", unread, paper_id)] if unread else []  # pdf.ocr
        record.problems = problems  # kept in the record: a resumed run reports the same lines
        apply_source(record, source)
        write_record_key(key_file(folder / "paper.json"), record_key(config))
        write_model_atomic(folder / "paper.json", record, durable=False)  # unreadable -> mined again
    problems = problems + paper_problems(record)
    return MineOutcome(problems, {"mined": 1, **_record_counts(record)}, _summary(record, problems))


def _mine_document(doc: pymupdf.Document, source_rel: str, paper_id: str, folder: Path, rel_folder: str,
                   config: BuildConfig) -> tuple[PaperRecord, list[int], str]:
    pages: list[PageData] = []
    page_objs: dict[int, pymupdf.Page] = {}
    errors: list[int] = []
    bare: list[int] = []  # page images without text: read by OCR below, if most pages are (pdf.ocr)
    for i in range(doc.page_count):
        try:
            page = upright(doc.load_page(i))  # /Rotate pages read in the frame they are shown in
            rect = page.rect
            text, graphics = page_text_and_graphics(doc, page, rect, TEXT_FLAGS)  # one pass without images
            blocks = drop_margin_comments(page_blocks(text), rect.width)
            scan = scan_page_image(page, graphics, rect) if graphics else None
            if scan is not None:  # a scanned page: its figures are cut from the page image (pdf.scan)
                blocks = join_caption_labels(blocks)  # its OCR layer: "Fig." apart from its number (pdf.ocr_text)
                in_captions = {i for c in find_captions(blocks) for i in c.blocks}
                graphics = [g for g in graphics if g is not scan] + scan_graphics(page, blocks, in_captions, scan)
            elif graphics and bare_page(blocks, graphics, rect):
                bare.append(i + 1)
        except Exception:  # noqa: BLE001 - a damaged page: keep the others
            errors.append(i + 1)
            continue
        pages.append(PageData(i + 1, blocks, graphics, rect))
        page_objs[i + 1] = page
    ocr, unread, ocr_state = read_bare_pages(doc, {n: page_objs[n] for n in bare}, len(pages), config.ocr)
    for pd in (pd for pd in pages if pd.number in ocr):
        pd.blocks, pd.graphics, pd.rect = ocr[pd.number]
    restore_chapter_dots([pd.blocks for pd in pages if any(g.kind == "scan" for g in pd.graphics)])  # OCR'd text
    page_h = {pd.number: pd.rect.height for pd in pages}
    repeated = repeated_keys(doc, [(pd.number, pd.graphics) for pd in pages], page_h)
    writer = ImageWriter(doc, folder, rel_folder, config)
    # slide templates' full-page rasters (pdf.background); a scanned document's page images are never judged
    backgrounds = BackgroundProbe(doc, config.max_image_pixels, enabled=ocr_state is None)
    figures: list[FigureRecord] = []
    skipped: list[SkippedGraphic] = []
    excerpts: list[Excerpt] = []
    previous_context = ""
    page_captions = [find_captions(pd.blocks) for pd in pages]
    captioned = any(page_captions)  # reports, slides: no caption anywhere
    for pd in pages:
        pd.doc_captioned = captioned
    # captions numbered "Figure 3-2": then "Fig. 3-2" in the text is that figure, not a range (pdf.numbers)
    dash_numbers = any("-" in c.number for caps in page_captions for c in caps)
    flows: list[PageFlow] = []
    for pd, caps in zip(pages, page_captions):
        page = page_objs[pd.number]
        figs, skips, body_text = _mine_page(doc, page, pd, paper_id, writer, (repeated, backgrounds), config)
        if not captioned:
            previous_context = page_text.uncaptioned_context(pd.blocks, figs, previous_context)
        figures += figs
        skipped += skips
        in_captions = {i for c in caps for i in c.blocks}
        flows.append(PageFlow(pd.number, [b.bbox for i, b in enumerate(pd.blocks)
                                          if i not in in_captions and b.is_paragraph], caps))
        for chunk in citable_chunks(body_text):  # Word's "Error! Reference source not found." sentences cut out
            for cit, text in cite_excerpts(chunk, config.excerpt_chars, dash_numbers):
                excerpts.append(Excerpt(figure_number=cit.figure_number, panels=cit.panels, text=text,
                                        page=pd.number))
    link_continued(figures, flows, captioned)
    first = pages[0].blocks if pages and pages[0].number == 1 else []
    meta = doc.metadata or {}
    doi_texts = [join_lines([ln.text for b in pd.blocks for ln in b.lines]) for pd in pages if pd.number <= 2]
    later = " ".join(ln.text for pd in pages if pd.number > 2 for b in pd.blocks for ln in b.lines)
    licence, url, where = pdf_licence(doc.get_xml_metadata() or "", " ".join(doi_texts), later)
    record = PaperRecord(paper_id=paper_id, source_pdf=source_rel, title=find_title(first, meta),
                         doi=find_doi(doi_texts, meta), n_pages=doc.page_count, figures=figures,
                         excerpts=excerpts, skipped=skipped, licence=licence, licence_url=url, licence_source=where,
                         ocr=ocr_state)
    return record, errors, unread


def _mine_page(doc: pymupdf.Document, page: pymupdf.Page, pd: PageData, paper_id: str, writer: ImageWriter,
               not_figures: tuple[set, BackgroundProbe], config: BuildConfig
               ) -> tuple[list[FigureRecord], list[SkippedGraphic], str]:
    repeated, backgrounds = not_figures
    skipped: list[SkippedGraphic] = []
    h = pd.rect.height
    usable: list[Graphic] = []
    for g in pd.graphics:
        if (g.width < config.min_figure_px or g.height < config.min_figure_px
                or box_width(g.bbox) < MIN_BBOX_PT or box_height(g.bbox) < MIN_BBOX_PT):
            skipped.append(SkippedGraphic(page=pd.number, bbox=round_box(g.bbox), reason="too_small"))
        elif is_repeated(doc, g, repeated, h):
            skipped.append(SkippedGraphic(page=pd.number, bbox=round_box(g.bbox), reason="repeated_publisher_image"))
        elif backgrounds.is_background(g, pd.rect):
            skipped.append(SkippedGraphic(page=pd.number, bbox=round_box(g.bbox), reason=PAGE_BACKGROUND))
        else:
            usable.append(g)
    captions = find_captions(pd.blocks)
    caption_blocks = {i for c in captions for i in c.blocks}
    body_boxes = [b.bbox for i, b in enumerate(pd.blocks) if i not in caption_blocks and b.is_paragraph]
    clusters = assemble_figures(usable, captions, body_boxes) if usable else []
    clusters = separate_uncaptioned(clusters, pd.rect.width)
    matched = {id(c.caption) for c in clusters if c.caption}
    if any(id(c) not in matched for c in captions):  # a caption no embedded image explains: look at drawings
        regions = [r for r in drawing_regions(page, [c.bbox for c in captions])  # a box around a paragraph is not a figure
                   if not any(overlap_area(r, b.bbox) > 0.5 * box_width(b.bbox) * box_height(b.bbox)
                              for i, b in enumerate(pd.blocks) if i not in caption_blocks and b.is_paragraph)]
        drawings = [Graphic(bbox=r, kind="drawing") for r in regions]
        clusters = assemble_figures(usable + drawings, captions, body_boxes)
    match_far_captions(clusters, captions, body_boxes)

    figures: list[FigureRecord] = []
    clusters.sort(key=lambda c: (round(c.bbox[1], 1), round(c.bbox[0], 1)))
    for cl in clusters:
        fig, skips = _make_figure(page, pd, cl, captions, paper_id, len(figures) + 1, writer)
        skipped += skips
        if fig and cl.caption:
            fig.caption_bold = cl.caption.bold  # bold panel letters ("a Schematic …"), read by panels.py
        if fig:
            figures.append(fig)

    figure_boxes = [expand(f.bbox, 2) for f in figures]
    return figures, skipped, page_text.body_text(pd.blocks, caption_blocks, figure_boxes)


def _make_figure(page: pymupdf.Page, pd: PageData, cl: Cluster, captions: list[Caption], paper_id: str,
                 index: int, writer: ImageWriter) -> tuple[FigureRecord | None, list[SkippedGraphic]]:
    skipped: list[SkippedGraphic] = []
    figure_id = f"{paper_id}-p{pd.number}-f{index}"
    embedded = sorted([g for g in cl.members if g.kind == "image"], key=lambda g: (g.bbox[1], g.bbox[0]))
    others = [g for g in cl.members if g.kind != "image"]
    scanned = any(g.kind == "scan" for g in others)
    # uncaptioned drawings are dropped; so are uncaptioned regions of a scan (equations, tables, stamps) where
    # the document captions its figures -- in one that captions none they are its pictures, as embedded ones
    if not embedded and cl.caption is None and not (scanned and not pd.doc_captioned):
        if others:
            reason = "uncaptioned_scan_region" if scanned else "uncaptioned_vector"
            skipped.append(SkippedGraphic(page=pd.number, bbox=round_box(cl.bbox), reason=reason))
        return None, skipped
    parts: list[FigurePart] = []
    bbox = cl.bbox
    if embedded:
        for g in embedded:
            saved = writer.embedded(g)
            if isinstance(saved, str):
                skipped.append(SkippedGraphic(page=pd.number, bbox=round_box(g.bbox), reason=saved))
                continue
            parts.append(FigurePart(image=saved.image, width=saved.width, height=saved.height,
                                    bbox=round_box(g.bbox), origin="embedded", source_format=saved.source_format))
        kind = "raster" if len(parts) == 1 else "multi_raster"
    else:
        bbox = in_figure_text_box(pd.blocks, captions, cl.bbox)
        bbox = (max(bbox[0], 0), max(bbox[1], 0), min(bbox[2], pd.rect.width), min(bbox[3], pd.rect.height))
        saved = writer.rendered(page, bbox, f"p{pd.number}-f{index}")
        if isinstance(saved, str):
            skipped.append(SkippedGraphic(page=pd.number, bbox=round_box(bbox), reason=saved))
        else:
            parts.append(FigurePart(image=saved.image, width=saved.width, height=saved.height,
                                    bbox=round_box(bbox), origin="rendered", source_format="rendered"))
        kind = "raster" if any(g.kind in ("inline", "scan") for g in others) else "vector"
    if not parts:
        return None, skipped
    letters = panel_letters(pd.blocks, captions, bbox)
    if len(parts) > 1 or letters:
        label_parts(parts, letters)
    caption = cl.caption
    return FigureRecord(figure_id=figure_id, paper_id=paper_id, page=pd.number, bbox=round_box(bbox), kind=kind,
                        number=caption.number if caption else None, caption=caption.text if caption else "",
                        parts=parts, panel_letters=letters), skipped


# --- problems and counts -----------------------------------------------------------------------------

PAGE_BACKGROUND = "page_background"  # a slide template's uniform full-page raster (pdf.background)
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
    counts = {"figures": len(record.figures), "parts": sum(len(f.parts) for f in record.figures),
              "captioned": sum(1 for f in record.figures if f.caption), "excerpts": len(record.excerpts)}
    backgrounds = sum(1 for s in record.skipped if s.reason == PAGE_BACKGROUND)
    if backgrounds:  # only where there are any: reports of papers without backgrounds stay as they were
        counts["page_backgrounds"] = backgrounds
    return counts


# --- the stage -----------------------------------------------------------------------------------------

def _mine_task(args: tuple[str, str, str, str, BuildConfig, SourceMeta | None]) -> MineOutcome:
    pdf, rel, paper_id, out, config, source = args
    shown = pymupdf.TOOLS.mupdf_display_errors(), pymupdf.TOOLS.mupdf_display_warnings()
    pymupdf.TOOLS.mupdf_display_errors(False)  # damaged files are reported as Problems, not stderr noise
    pymupdf.TOOLS.mupdf_display_warnings(False)
    try:
        return mine_paper(Path(pdf), rel, paper_id, Path(out), config, source)
    except Exception as exc:  # noqa: BLE001 - bad input must never stop the run
        return MineOutcome([_problem(rel, "mine_error", f"{type(exc).__name__}: {exc}", paper_id, "failed")],
                           {"failed": 1})
    finally:
        pymupdf.TOOLS.mupdf_display_errors(shown[0])
        pymupdf.TOOLS.mupdf_display_warnings(shown[1])


def record_key(config: BuildConfig) -> str:
    """The key of the paper records this code makes with these settings and this PyMuPDF (stage_cache.StageKeys;
    its MuPDF holds the Tesseract that OCRs, so no version of its own; the language data is not in the key)."""
    settings = {name: getattr(config, name) for name in MINE_SETTINGS} | library_versions("pymupdf", "pydantic")
    return StageKeys(["dataset_builders.mine"], settings).base


def _summary(record: PaperRecord, problems: list[Problem]) -> str:
    """What a resumed paper adds to the stage result (resume_summaries): its counts, its report lines, its OCR."""
    return json.dumps({"counts": _record_counts(record), "ocr": record.ocr,
                       "problems": [p.model_dump(mode="json") for p in problems]}, separators=(",", ":"))


def _kept_summary(line: str, config: BuildConfig) -> dict | None:
    """A kept summary's counts and problems; None when it does not read, or is of a scan read without Tesseract
    that is there now (then the record decides: resumable)."""
    try:
        summary = json.loads(line)
        summary["problems"] = [Problem.model_validate(p) for p in summary["problems"]]
        dict(summary["counts"])
    except (ValueError, TypeError, KeyError):
        return None
    return None if summary.get("ocr") == "unavailable" and config.ocr != "off" and tessdata() is not None else summary


def _resume(paths: StagePaths, config: BuildConfig, firsts: dict[str, str], manifests: ManifestIndex | None,
            summaries: ResumeSummaries) -> dict[str, tuple[dict | None, str, bool, str, str]]:
    """{paper id: (its counts and problems when resumed, else None; why it is mined again; its source metadata
    updated; its summary line; its manifest entry's JSON)} of the papers with a paper.json (firsts: id -> the
    first file with those bytes), in paper id order: a current record's summary is the kept one
    (stages/mine_resumed.tsv) while it is the same file, kept with the same manifest entry (applied to it then:
    applying it again changes nothing), else made from the record, brought up to date with the manifest
    (refresh_source). A paper not resumed is forgotten (forget_paper)."""
    key, out = record_key(config), {}
    for pid in (pid for pid in sorted(firsts) if (paths.mine / pid / "paper.json").exists()):
        target, source = paths.mine / pid / "paper.json", manifests.lookup(pid, firsts[pid]) if manifests else None
        also = _kept_with(firsts[pid], source.source_meta() if source is not None else None)
        line = summaries.take(pid, target, also) if record_is_current(key_file(target), key) else None
        summary, updated = _kept_summary(line, config) if line is not None else None, False
        if summary is None:
            record, again = resumable(paths, pid, key, config.ocr)
            if record is not None and record.source_pdf != firsts[pid]:  # the PDF renamed or moved (same bytes):
                record, again = None, "renamed_remined"  # mined again, or the dataset names a file no longer there
            if record is None:
                forget_paper(paths, pid)  # its panels too: never a panels file of a paper mined anew
                out[pid] = None, again, False, "", ""
                continue
            updated = source is not None and refresh_source(paths, record, source.source_meta())
            summary = {"counts": _record_counts(record), "problems": record.problems + paper_problems(record)}
            line = _summary(record, summary["problems"])
        out[pid] = summary, "", updated, line, also
    return out


def _kept_with(rel: str, source: SourceMeta | None) -> str:
    """What a kept summary is kept with besides its record file: the PDF's path (a renamed PDF's record names
    the old one) and its manifest entry (the same: nothing to refresh)."""
    return json.dumps(rel) + (source.model_dump_json() if source is not None else "")


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Mine every PDF under ``config.papers`` (recursively, sorted); every other file becomes a Problem."""
    with ExitStack() as stack:  # the summaries of the records resumed or written, kept when the stage ends
        summaries = ResumeSummaries(paths.stages / "mine_resumed.tsv", record_key(config), stack)
        return _run(paths, config, progress, summaries)


def _run(paths: StagePaths, config: BuildConfig, progress: bool, summaries: ResumeSummaries) -> StageResult:
    if config.papers is None:
        raise ValueError("mine: config.papers is not set (the build resolves the sample corpus before this stage)")
    root = Path(config.papers)
    files = sorted(paper_files(root), key=lambda p: p.relative_to(root).as_posix())
    counts = {"files": len(files), "pdfs": 0, "mined": 0, "resumed": 0, "failed": 0, "figures": 0, "parts": 0,
              "captioned": 0, "excerpts": 0}
    slots: list[list[Problem]] = [[] for _ in files]
    tasks: list[tuple[int, tuple]] = []
    seen: dict[str, str] = {}
    manifests = ManifestIndex.load(root)  # papers.jsonl written by dataset_builders.fetch, if any
    # the content hashes (paper ids) first, in the pool: reading and hashing every file is ~0.3 s per 250 MB;
    # a file hashed by an earlier build and unchanged since (inode, size, mtime) is not read again
    checked = check_files(files, paths.stages / "mine_ids.tsv", config.workers)
    rels = [shown_name(f.relative_to(root).as_posix()) for f in files]  # a name not UTF-8: refused by check_files
    resumed = _resume(paths, config, {pid: rels[i] for i, (pid, why) in reversed(list(enumerate(checked)))
                                      if why is None}, manifests, summaries)
    lines = {}  # {paper id: [its summary line, its manifest entry]}, kept at the end in paper id order
    for idx, (f, rel, (pid, why)) in enumerate(zip(files, rels, checked)):
        if why is not None:
            reason, detail, severity = why
            slots[idx].append(_problem(rel, reason, detail, severity=severity))
            continue
        counts["pdfs"] += 1
        if pid in seen:
            slots[idx].append(_problem(rel, "duplicate_pdf", f"same bytes as {seen[pid]}", pid))
            continue
        seen[pid] = rel
        if pid in resumed:
            summary, again, updated, *lines[pid] = resumed.pop(pid)
            if summary is not None:
                counts["resumed"] += 1
                if updated:
                    counts["metadata_updated"] = counts.get("metadata_updated", 0) + 1
                for k, v in summary["counts"].items():
                    counts[k] = counts.get(k, 0) + v
                slots[idx] += summary["problems"]
                continue
            if again:
                counts[again] = counts.get(again, 0) + 1
        source = manifests.lookup(pid, rel) if manifests else None
        tasks.append((idx, (str(f), rel, pid, str(paths.out), config, source.source_meta() if source else None)))

    outcomes = run_jobs(_mine_task, [args for _, args in tasks], config.workers, "mine", "pdf", progress)
    for (idx, args), outcome in zip(tasks, outcomes):
        slots[idx] += outcome.problems
        lines[args[2]] = [outcome.summary, _kept_with(args[1], args[5])]
        for k, v in outcome.counts.items():
            counts[k] = counts.get(k, 0) + v
    # PDFs gone from the papers folder since the last run; a folder with no PDF at all (a typo, an unmounted
    # share) forgets nothing: every paper's records would go, which is never what was meant
    if seen and (removed := forget_removed(paths, set(seen))):
        counts["removed"] = removed
    for pid in sorted(pid for pid, (line, _) in lines.items() if line):
        summaries.keep(pid, paths.mine / pid / "paper.json", *lines[pid])
    return StageResult(stage=STAGE, counts=counts, problems=[p for slot in slots for p in slot])
