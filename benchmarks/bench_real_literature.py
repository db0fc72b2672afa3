"""Benchmark: the builder's accuracy on real papers, panel by panel, one line per set of papers.

Usage:
    python benchmarks/bench_real_literature.py                 # every set present: shared + staged registry
    python benchmarks/bench_real_literature.py --set ../real_registry --out /tmp/rl --json scores.json

A set is a folder with ``pdfs/`` and ``annotations.json``: ``../shared/real_literature`` (hand-picked, the
builder was tuned on it) and ``../real_registry`` (the project's registry, staged by
benchmarks/stage_registry.py; docs/real_registry.md). Default: both, where present. Each set is built
offline (caption-rule labeller) up to the filter stage and scored against its ``annotations.json`` (the
real_literature README describes the format). What is measured:

* figure recall: annotated figures (``ignore`` ones aside) for which the miner produced a figure;
* panel-split accuracy: a lettered figure is split right when its panels carry exactly the annotated
  letters; a single-panel figure when it stays one panel; an unlettered multi-panel figure ("left"/"right",
  GUI panes) when no letter was invented;
* filter precision/recall per annotated panel: a panel is kept when a mined panel standing for it (same
  letter, or an unlettered/whole panel of its figure) is kept; a kept panel of an unannotated figure counts
  as a false keep unless the PDF says ``unlisted_figures: ignore``;
* labels, two ways: "dataset" = features of the kept panels standing for each annotated panel (what ends in
  the dataset: filter misses cost recall, labels on false keeps cost precision); "labeller" = the caption
  rules run on every mined panel of the annotated fractograph panels, whatever the filter said.
Every miss is printed with its reason. The real set is small and lopsided: these are smoke checks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from dataset_builders.build import build
from dataset_builders.config import BuildConfig
from dataset_builders.labelling.caption_rules import label_panel
from dataset_builders.pdf.numbers import DASHED, DOTTED, PREFIX, normalise_number
from dataset_builders.records import FilterDecision, PanelRecord, PaperPanels, PaperRecord
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_model

REPO = Path(__file__).resolve().parents[1]


def find_real_literature(repo: Path = REPO) -> Path | None:
    """<repo>/../shared/real_literature, else /work/shared/real_literature (worktrees), else None."""
    for candidate in (repo.parent / "shared" / "real_literature", Path("/work/shared/real_literature")):
        if (candidate / "annotations.json").is_file() and (candidate / "pdfs").is_dir():
            return candidate
    return None


def find_real_registry(repo: Path = REPO) -> Path | None:
    """$FRACTO_REAL_REGISTRY if set (a staged folder elsewhere; an error if it is not one), else
    <repo>/../real_registry, else /work/real_registry (worktrees), when staged; else None."""
    chosen = os.environ.get("FRACTO_REAL_REGISTRY")
    if chosen:
        path = Path(chosen)
        if not ((path / "annotations.json").is_file() and (path / "pdfs").is_dir()):
            raise FileNotFoundError(f"FRACTO_REAL_REGISTRY={chosen}: not a staged registry folder "
                             "(annotations.json and pdfs/ expected; python benchmarks/stage_registry.py --out DIR)")
        return path
    for candidate in (repo.parent / "real_registry", Path("/work/real_registry")):
        if (candidate / "annotations.json").is_file() and (candidate / "pdfs").is_dir():
            return candidate
    return None


# --- matching mined figures to annotated ones -----------------------------------------------------------

# the miner's figure-number grammar: "Fig. 3", "Figure 7.5", "Figure 3-2", "Fig. S3" (dataset_builders.pdf.numbers)
_FIG_NUMBER = re.compile(rf"^fig(?:ure)?s?\.?\s*((?:{PREFIX})?(?:{DASHED}|{DOTTED}))", re.IGNORECASE)


def annotated_number(fig: dict) -> str | None:
    m = _FIG_NUMBER.match(fig["figure"].strip())
    return normalise_number(m.group(1)) if m else None


def panel_keys(fig: dict) -> tuple[list[str], bool]:
    """(annotated panel keys, lettered?). Lettered figures get a..; others keep their descriptive keys."""
    keys = list(fig.get("evidence", {})) or ["whole"]
    if all(len(k) == 1 and k.isalpha() for k in keys) or (keys == ["all"] and fig["panels"] > 1):
        return [chr(ord("a") + i) for i in range(fig["panels"])], True
    return keys, False


def match_figures(paper_ann: dict, paper: PaperRecord) -> dict[int, list[str]]:
    """Annotated figure index -> mined figure ids. Numbered figures match by number; uncaptioned ones by page,
    in reading order (one annotation on a page takes every uncaptioned figure of that page)."""
    out: dict[int, list[str]] = defaultdict(list)
    uncaptioned_by_page: dict[int, list[int]] = defaultdict(list)
    for i, fig in enumerate(paper_ann["figures"]):
        number = annotated_number(fig)
        if number is None:
            uncaptioned_by_page[fig["page"]].append(i)
            continue
        same = [f for f in paper.figures if f.number == number]
        on_page = [f for f in same if f.page == fig["page"]] or same
        out[i] = [f.figure_id for f in on_page]
    for page, ann_ids in uncaptioned_by_page.items():
        mined = [f for f in paper.figures if f.page == page and f.number is None]
        mined.sort(key=lambda f: (f.bbox[1], f.bbox[0]))
        if len(ann_ids) == 1:
            out[ann_ids[0]] = [f.figure_id for f in mined]
        else:
            for k, f in enumerate(mined):
                out[ann_ids[min(k, len(ann_ids) - 1)]].append(f.figure_id)
    return out


# --- scores --------------------------------------------------------------------------------------------

@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Scores:
    pdfs: int = 0
    pdfs_accounted: int = 0
    figures: int = 0
    figures_found: int = 0
    split_right: int = 0
    filter: Counts = field(default_factory=Counts)
    dataset_labels: Counts = field(default_factory=Counts)
    labeller: Counts = field(default_factory=Counts)
    per_feature: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    misses: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {
            "pdfs_accounted": self.pdfs_accounted / max(self.pdfs, 1),
            "figure_recall": self.figures_found / max(self.figures, 1),
            "split_accuracy": self.split_right / max(self.figures, 1),
            "filter_precision": self.filter.precision, "filter_recall": self.filter.recall,
            "label_precision": self.dataset_labels.precision, "label_recall": self.dataset_labels.recall,
            "labeller_precision": self.labeller.precision, "labeller_recall": self.labeller.recall,
        }


def _split_right(mined: list[PanelRecord], keys: list[str], lettered: bool, n_panels: int) -> tuple[bool, str]:
    letters = [p.letter for p in mined]
    if n_panels == 1:
        return len(mined) == 1, f"{len(mined)} panels for a single-panel figure"
    if not lettered:
        invented = sorted({x for x in letters if x})
        return not invented, f"invented letters {invented}"
    ok = None not in letters and sorted(letters) == sorted(keys)
    return ok, f"panels {[x or 'whole/part' for x in letters]} for letters {keys}"


def score_build(out: Path, real: Path) -> Scores:
    """Score a build in ``out`` (stages mine..filter done) against ``real``/annotations.json."""
    paths = StagePaths(out)
    annotations = json.loads((real / "annotations.json").read_text(encoding="utf-8"))
    decisions = {}
    if paths.filter.exists():
        for line in paths.filter.read_text(encoding="utf-8").splitlines():
            d = FilterDecision.model_validate_json(line)
            decisions[d.panel_id] = d
    papers: dict[str, PaperRecord] = {}
    panels: dict[str, list[PanelRecord]] = {}
    for f in paths.mine.glob("*/paper.json"):
        rec = read_model(f, PaperRecord)
        papers[rec.source_pdf] = rec
        pp = paths.panels / f"{rec.paper_id}.json"
        panels[rec.source_pdf] = read_model(pp, PaperPanels).panels if pp.exists() else []
    s = Scores()
    labels_cache: dict[str, set[str]] = {}

    def labels(p: PanelRecord) -> set[str]:
        if p.panel_id not in labels_cache:
            labels_cache[p.panel_id] = set(label_panel(p).features)
        return labels_cache[p.panel_id]

    for paper_ann in annotations:
        s.pdfs += 1
        source = paper_ann["file"].removeprefix("pdfs/")
        name = Path(source).name
        paper = papers.get(source)
        if paper is None:
            s.misses.append(f"{name}: not mined at all")
            continue
        s.pdfs_accounted += 1
        mined_panels = panels[source]
        by_figure: dict[str, list[PanelRecord]] = defaultdict(list)
        for p in mined_panels:
            by_figure[p.figure_id].append(p)
        matches = match_figures(paper_ann, paper)
        claimed = {fid for ids in matches.values() for fid in ids}
        for i, fig in enumerate(paper_ann["figures"]):
            if fig.get("ignore"):
                continue
            where = f"{name} p{fig['page']} {fig['figure']}"
            s.figures += 1
            fig_panels = [p for fid in matches.get(i, []) for p in by_figure[fid]]
            keys, lettered = panel_keys(fig)
            positives = set(fig["fractograph_panels"])
            if "whole" in positives or (positives and not lettered):
                positives = set(keys)
            if not fig_panels:
                s.misses.append(f"{where}: figure not mined" + (" (holds fractographs)" if positives else ""))
                for k in keys:
                    if k in positives:
                        s.filter.fn += 1
                        _count_labels(s, set(), set(fig["expected_features"].get(k, [])), where, k, "dataset")
                        _count_labels(s, set(), set(fig["expected_features"].get(k, [])), where, k, "labeller")
                continue
            s.figures_found += 1
            ok, why = _split_right(fig_panels, keys, lettered, fig["panels"])
            s.split_right += ok
            if not ok:
                s.misses.append(f"{where}: split wrong: {why}")
            for k in keys:
                covering = [p for p in fig_panels if p.letter == k or p.letter is None or not lettered]
                kept = [p for p in covering if decisions.get(p.panel_id) and decisions[p.panel_id].keep]
                expected = set(fig["expected_features"].get(k, fig["expected_features"].get("whole", [])))
                if k in positives:
                    if kept:
                        s.filter.tp += 1
                    else:
                        s.filter.fn += 1
                        why = "; ".join(f"{p.panel_id.split('-', 1)[1]} score {decisions[p.panel_id].score}: "
                                        f"{', '.join(decisions[p.panel_id].reasons[:6])}"
                                        for p in covering if p.panel_id in decisions) or "no mined panel"
                        s.misses.append(f"{where} ({k}): fractograph dropped: {why}")
                    _count_labels(s, set().union(*map(labels, covering)) if covering else set(), expected,
                                  where, k, "labeller")
                elif kept:
                    s.filter.fp += 1
                    s.misses.append(f"{where} ({k}): non-fractograph kept: "
                                    + "; ".join(f"score {decisions[p.panel_id].score}: "
                                                f"{', '.join(decisions[p.panel_id].reasons[:6])}" for p in kept))
                predicted = set().union(*map(labels, kept)) if kept else set()
                _count_labels(s, predicted, expected if k in positives else set(), where, k, "dataset")
        if paper_ann.get("unlisted_figures") != "ignore":
            for p in mined_panels:
                d = decisions.get(p.panel_id)
                if p.figure_id not in claimed and d and d.keep:
                    s.filter.fp += 1
                    s.misses.append(f"{name} p{p.page} unannotated {p.panel_id.split('-', 1)[1]} kept: "
                                    f"score {d.score}: {', '.join(d.reasons[:6])}")
                    _count_labels(s, labels(p), set(), f"{name} p{p.page} unannotated", p.panel_id, "dataset")
    return s


def _count_labels(s: Scores, predicted: set[str], expected: set[str], where: str, key: str, kind: str) -> None:
    counts = s.dataset_labels if kind == "dataset" else s.labeller
    tp, fp, fn = predicted & expected, predicted - expected, expected - predicted
    counts.tp += len(tp)
    counts.fp += len(fp)
    counts.fn += len(fn)
    if kind == "dataset":
        for f in tp:
            s.per_feature[f].tp += 1
        for f in fp:
            s.per_feature[f].fp += 1
        for f in fn:
            s.per_feature[f].fn += 1
    if fp or fn:
        parts = ([f"wrong {sorted(fp)}"] if fp else []) + ([f"missed {sorted(fn)}"] if fn else [])
        s.misses.append(f"{where} ({key}): {kind} labels: {'; '.join(parts)}")


def run_benchmark(out: Path, real: Path, workers: int = 2) -> Scores:
    config = BuildConfig(papers=real / "pdfs", out=out, workers=workers)
    build(config, to_stage="filter", progress=False, fresh=True)
    return score_build(out, real)


def format_report(s: Scores) -> str:
    sm = s.summary()
    lines = [
        f"PDFs accounted for       {s.pdfs_accounted}/{s.pdfs}",
        f"figure recall            {sm['figure_recall']:.2f} ({s.figures_found}/{s.figures})",
        f"panel-split accuracy     {sm['split_accuracy']:.2f} ({s.split_right}/{s.figures})",
        f"filter precision         {sm['filter_precision']:.2f} (tp {s.filter.tp}, fp {s.filter.fp})",
        f"filter recall            {sm['filter_recall']:.2f} (tp {s.filter.tp}, fn {s.filter.fn})",
        f"labels (dataset) P / R   {sm['label_precision']:.2f} / {sm['label_recall']:.2f} "
        f"(tp {s.dataset_labels.tp}, fp {s.dataset_labels.fp}, fn {s.dataset_labels.fn})",
        f"labeller alone   P / R   {sm['labeller_precision']:.2f} / {sm['labeller_recall']:.2f} "
        f"(tp {s.labeller.tp}, fp {s.labeller.fp}, fn {s.labeller.fn})",
        "per feature (dataset): " + ", ".join(
            f"{f} P {c.precision:.2f} R {c.recall:.2f} (tp {c.tp} fp {c.fp} fn {c.fn})"
            for f, c in sorted(s.per_feature.items())),
        f"misses ({len(s.misses)}):",
    ]
    lines += [f"  - {m}" for m in s.misses]
    return "\n".join(lines)


def summary_line(name: str, s: Scores) -> str:
    sm = s.summary()
    return (f"{name:<22} pdfs {s.pdfs_accounted}/{s.pdfs}  figures {s.figures_found}/{s.figures}  "
            f"split {sm['split_accuracy']:.2f}  filter P {sm['filter_precision']:.2f} R {sm['filter_recall']:.2f}  "
            f"labels P {sm['label_precision']:.2f} R {sm['label_recall']:.2f}  "
            f"labeller P {sm['labeller_precision']:.2f} R {sm['labeller_recall']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--set", dest="sets", type=Path, action="append", default=None, metavar="DIR",
                        help="a set to score (pdfs/ + annotations.json); repeatable "
                             "(default: ../shared/real_literature and ../real_registry, where present)")
    parser.add_argument("--real", type=Path, default=None, help="same as one --set (kept for old scripts)")
    parser.add_argument("--out", type=Path, default=None,
                        help="build folder; each set builds into OUT/<set name> (default: a temporary one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the summaries here, by set")
    ns = parser.parse_args(argv)
    sets = list(ns.sets or []) + ([ns.real] if ns.real else [])
    if not sets:
        try:
            sets = [p for p in (find_real_literature(), find_real_registry()) if p is not None]
        except FileNotFoundError as exc:
            print(exc, file=sys.stderr)
            return 2
    if not sets:
        print("no set of real papers found (expected ../shared/real_literature or ../real_registry)", file=sys.stderr)
        return 2
    bad = [str(p) for p in sets if not (p / "annotations.json").is_file() or not (p / "pdfs").is_dir()]
    if bad:
        print(f"not a set of papers (needs pdfs/ and annotations.json): {', '.join(bad)}", file=sys.stderr)
        return 2
    results: dict[str, Scores] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for real in sets:
            name = base = real.resolve().name
            while name in results:  # two sets of one folder name (two stagings of ../real_registry): both kept
                name = f"{base}-{len(results) + 1}"
            print(f"=== {name} ({real}) ===", flush=True)
            scores = run_benchmark((ns.out or Path(tmp)) / name, real, ns.workers)
            results[name] = scores
            print(format_report(scores), flush=True)
    print("=== summary, one line per set ===")
    for name, scores in results.items():
        print(summary_line(name, scores))
    if ns.json:
        ns.json.write_text(json.dumps({n: s.summary() for n, s in results.items()}, indent=1) + "\n",
                           encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
