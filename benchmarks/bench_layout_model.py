"""Trial: PyMuPDF's own layout model (pymupdf_layout, ONNX) as a second caption detector.

Usage:
    python benchmarks/bench_layout_model.py                          # ../shared/real_literature
    python benchmarks/bench_layout_model.py --set ../real_registry   # a staged registry set (repeatable)

The builders refuse ``pymupdf.layout`` at import (dataset_builders/__init__.py: 0.9 s, 94 MiB and ONNX
threads in every process). Issue 22 asks whether it earns that cost as a second detector on the pages
where the rules go wrong: an image mined without a caption, or an annotated figure the rules did not
match to its caption. This script measures both sides on real papers, each set on its own line:

* the rules: the builder's mine stage (offline); for every annotated, numbered figure, whether a mined
  figure carries its number (``rules found``), and the pages where that failed or where a figure was
  mined without any caption (``pages of interest``);
* the layout model, in a separate clean process (so its import and memory are its own): every page of
  interest goes through ``Page.get_layout()``; a box of class ``caption`` whose text starts with the
  annotated caption's first words is a figure the model *could* recover (``recoverable``); caption boxes
  that start with no annotated caption are counted as ``spurious``;
* the cost: seconds per page of ``get_layout`` (median) as a ratio to the whole mine stage's seconds per
  page (one worker, measured in the same run), the worker's import seconds and peak RSS.

In pymupdf_layout 2.0 as installed, ``get_layout`` classifies the page's *text* blocks (text, caption,
section-header, table, formula, page-header/-footer, list-item, footnote; read from
``pymupdf/layout/DocumentLayoutAnalyzer.py`` and seen on the real set): it reports no picture boxes, so
it can only be a caption detector, never a figure detector.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_WORDS = re.compile(r"[a-z0-9]+")


_LABEL = re.compile(r"(?i)^\s*fig(?:ure)?s?\.?\s*[A-Z]?\d+(?:[.\-\u2013]\d+)*\s*[.:|\u2014-]?\s*")


def _key(text: str, n: int = 6) -> tuple[str, ...]:
    """The first n words of a caption after its figure label ("Figure 2.2."), lower-case: enough to tell
    captions apart, robust to line breaks (annotations give caption_start with or without the label)."""
    return tuple(_WORDS.findall(_LABEL.sub("", text, count=1).lower())[:n])


def _number(figure: str) -> str | None:
    m = re.match(r"(?i)^fig(?:ure)?s?\.?\s*([A-Z]?\d+(?:[.\-\u2013]\d+)*)", figure.strip())
    return m.group(1) if m else None


def rules_side(real: Path, work: Path) -> dict:
    """Mine every PDF of the set with the builder; return per-PDF pages of interest and rule hits."""
    from dataset_builders.build import build
    from dataset_builders.config import BuildConfig
    from dataset_builders.records import PaperRecord
    from dataset_builders.stage_paths import StagePaths
    from fracto_core.files import read_model

    t0 = time.perf_counter()
    build(BuildConfig(papers=real / "pdfs", out=work, workers=1), to_stage="mine", progress=False, fresh=True)
    mine_s = time.perf_counter() - t0
    papers = {}
    for f in StagePaths(work).mine.glob("*/paper.json"):
        rec = read_model(f, PaperRecord)
        papers[rec.source_pdf] = rec
    out: dict = {"figures": 0, "rules_found": 0, "pdfs": {}, "mine_s": mine_s,
                 "pages": sum(p.n_pages for p in papers.values())}
    for ann in json.loads((real / "annotations.json").read_text(encoding="utf-8")):
        source = ann["file"].removeprefix("pdfs/")
        paper = papers.get(source)
        pages: set[int] = set()
        wanted = []
        for fig in ann["figures"]:
            number = _number(fig["figure"])
            if fig.get("ignore") or number is None or not fig.get("caption_start"):
                continue
            out["figures"] += 1
            found = paper is not None and any(str(f.number) == number for f in paper.figures)
            out["rules_found"] += found
            if not found:
                pages.add(fig["page"])
                wanted.append({"page": fig["page"], "figure": fig["figure"], "key": _key(fig["caption_start"])})
        if paper is not None:
            pages |= {f.page for f in paper.figures if f.number is None}
        captions = [_key(fig["caption_start"]) for fig in ann["figures"] if fig.get("caption_start")]
        out["pdfs"][source] = {"pages": sorted(pages), "wanted": wanted, "captions": captions}
    return out


def layout_worker(pdf_dir: str, plan_file: str) -> None:
    """Run in a clean process: import PyMuPDF *with* its layout model, classify the planned pages."""
    import resource

    t0 = time.perf_counter()
    import pymupdf  # loads pymupdf.layout (nothing here refuses it)

    import_s = time.perf_counter() - t0
    plan = json.loads(Path(plan_file).read_text(encoding="utf-8"))
    result = {"import_s": import_s, "page_s": [], "recoverable": [], "missed": [], "spurious": 0}
    for source, item in plan["pdfs"].items():
        if not item["pages"]:
            continue
        doc = pymupdf.open(Path(pdf_dir) / source)
        known = {tuple(k) for k in item["captions"]}
        for page_no in item["pages"]:
            page = doc[page_no - 1]
            t = time.perf_counter()
            page.get_layout()
            result["page_s"].append(time.perf_counter() - t)
            boxes = [b for b in (page.layout_information or []) if b[4] == "caption"]
            keys = [_key(page.get_textbox(pymupdf.Rect(b[:4]))) for b in boxes]
            result["spurious"] += sum(1 for k in keys if not any(k[:4] == c[:4] for c in known))
            for w in (w for w in item["wanted"] if w["page"] == page_no):
                hit = any(k[:4] == tuple(w["key"])[:4] for k in keys)
                (result["recoverable"] if hit else result["missed"]).append(f"{source} {w['figure']}")
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(real: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        rules = rules_side(real, Path(tmp) / "build")
        plan = Path(tmp) / "plan.json"
        plan.write_text(json.dumps(rules), encoding="utf-8")
        proc = subprocess.run([sys.executable, __file__, "--layout-worker", str(real / "pdfs"), str(plan)],
                              capture_output=True, text=True, check=True)
    layout = json.loads(proc.stdout.strip().splitlines()[-1])
    pages = sum(len(p["pages"]) for p in rules["pdfs"].values())
    return {"set": str(real), "pdfs": len(rules["pdfs"]), "figures": rules["figures"],
            "mine_s_per_page": rules["mine_s"] / max(rules["pages"], 1),
            "rules_found": rules["rules_found"], "pages_of_interest": pages, **layout}


def format_line(m: dict) -> str:
    per_page = statistics.median(m["page_s"]) if m["page_s"] else 0.0
    return (f"{Path(m['set']).name:<20} PDFs {m['pdfs']:>3}  numbered figures {m['figures']:>3}  "
            f"rules found {m['rules_found']:>3}  pages of interest {m['pages_of_interest']:>3}  "
            f"layout recoverable {len(m['recoverable']):>2} of {len(m['recoverable']) + len(m['missed'])} "
            f"missed  spurious captions {m['spurious']:>2}  |  get_layout {per_page:.2f} s/page (median of "
            f"{len(m['page_s'])}) = {per_page / m['mine_s_per_page']:.0f}x the whole mine stage's "
            f"{m['mine_s_per_page']:.3f} s/page (one worker, same run), import {m['import_s']:.2f} s, "
            f"worker peak RSS {m['peak_rss_mib']:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 4 and sys.argv[1] == "--layout-worker":
        layout_worker(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, action="append", default=None,
                        help="a real-paper set (folder with annotations.json and pdfs/); repeatable "
                             "(default: ../shared/real_literature)")
    ns = parser.parse_args(argv)
    sets = ns.set or [REPO.parent / "shared" / "real_literature"]
    missing = [s for s in sets if not (s / "annotations.json").is_file()]
    if missing:
        print(f"not a real-paper set (no annotations.json): {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    for s in sets:
        m = measure(s)
        print(format_line(m))
        for name in m["recoverable"]:
            print(f"    recoverable: {name}")
        for name in m["missed"]:
            print(f"    missed by both: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
