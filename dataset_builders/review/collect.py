"""What an expert reviews, gathered from a build's stage files: one ReviewItem per image.

Reads OUT/stages/items.jsonl (the dataset's items), labels.jsonl (evidence, label status), panels/*.json
(caption, excerpts, source paper), filter.jsonl (decision, score, reasons) and splits.jsonl; with
``include_rejected`` also the panels the filter rejected (no label, shown with the filter's reasons) and the
images an expert marked "not a fractograph" (or left without a feature) in OUT/review/expert_labels.jsonl,
which the items stage dropped: shown with the labels they had, who rejected them, when, and the note.
Writes nothing.

Usage:
    from dataset_builders.review.collect import collect_items
    items = collect_items(Path("runs/ds1"))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dataset_builders.items import load_manual_items, load_panels
from dataset_builders.manual import EXPERT_LABELS_NAME, ExpertLabel, read_expert_labels
from dataset_builders.records import FilterDecision, Item, LabelRecord, SplitAssignment
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl


class ReviewInputError(ValueError):
    """The build folder cannot be reviewed (the message names the folder and what is missing)."""


@dataclass
class ReviewItem:
    """One image as the reviewer sees it."""

    item_id: str
    image: Path  # absolute path of the image file
    image_rel: str  # path relative to the build folder (as records store it)
    features: list[str]  # current labels (canonical, vocabulary order); [] for filter-rejected panels
    origin: str  # label origin ("caption_rules", "model:<name>", "manual", "expert"), "" when unlabelled
    evidence: dict[str, str] = field(default_factory=dict)  # feature -> supporting text
    caption: str = ""
    excerpts: list[str] = field(default_factory=list)
    paper: str = ""  # source PDF (mined) or manual source
    split: str = ""  # train | val | test | "" (not in the dataset)
    kept: bool = True  # the filter's decision (manual items: True)
    filter_score: float | None = None
    filter_reasons: list[str] = field(default_factory=list)
    rejected_by: str = ""  # the expert who marked it "not a fractograph" (or gave no feature): not in the dataset
    rejection: str = ""  # "not a fractograph" | "no feature", with the time and the expert's note


def _jsonl(path: Path, model) -> list:
    return read_jsonl(path, model) if path.exists() else []


def collect_items(out: Path, include_rejected: bool = False) -> list[ReviewItem]:
    """Review items of the build in ``out``, sorted by item id (dataset items, then rejected panels if asked)."""
    paths = StagePaths(out)
    if not paths.items.exists():
        raise ReviewInputError(f"{paths.items}: not found; build the dataset first "
                               f"(python -m dataset_builders.build --out {out})")
    panels = load_panels(paths) if paths.panels.exists() else {}
    labels = {r.item_id: r for r in _jsonl(paths.labels, LabelRecord)}
    decisions = {d.panel_id: d for d in _jsonl(paths.filter, FilterDecision)}
    splits = {a.item_id: a.split for a in _jsonl(paths.splits, SplitAssignment)}

    out_items: list[ReviewItem] = []
    for item in _jsonl(paths.items, Item):
        panel = panels.get(item.item_id)
        label = labels.get(item.item_id)
        decision = decisions.get(item.item_id)
        out_items.append(ReviewItem(
            item_id=item.item_id, image=paths.abs(item.image), image_rel=item.image, features=list(item.features),
            origin=item.label_origin,
            evidence=dict(label.evidence) if label is not None and item.label_origin == label.origin else {},
            caption=panel.caption if panel else str(item.provenance.get("notes") or ""),
            excerpts=list(panel.excerpts) if panel else [],
            paper=panel.source_pdf if panel else ", ".join(item.paper_ids),
            split=splits.get(item.item_id, ""), kept=True,
            filter_score=decision.score if decision else None,
            filter_reasons=list(decision.reasons) if decision else ["manual collection: not filtered"]))
    if include_rejected:
        for d in sorted(decisions.values(), key=lambda d: d.panel_id):
            panel = panels.get(d.panel_id)
            if d.keep or panel is None:
                continue
            out_items.append(ReviewItem(
                item_id=d.panel_id, image=paths.abs(panel.image), image_rel=panel.image, features=[], origin="",
                caption=panel.caption, excerpts=list(panel.excerpts), paper=panel.source_pdf, kept=False,
                filter_score=d.score, filter_reasons=list(d.reasons)))
        out_items += _expert_rejected(paths, panels, {i.item_id for i in out_items}, decisions)
    return sorted(out_items, key=lambda r: (not r.kept, bool(r.rejected_by), r.item_id))


def _expert_rejected(paths: StagePaths, panels: dict, listed: set[str], decisions: dict) -> list[ReviewItem]:
    """The images an expert rejected (the items stage dropped them), with who rejected them."""
    manual = {m.item_id: m for m in load_manual_items(paths)}
    out: list[ReviewItem] = []
    for x in read_expert_labels(paths.out / "review" / EXPERT_LABELS_NAME):
        if (not x.not_fractograph and x.features) or x.item_id in listed:
            continue
        panel, item = panels.get(x.item_id), manual.get(x.item_id)
        if panel is None and item is None:
            continue  # an image of an older build: nothing to show
        image = panel.image if panel is not None else item.image
        decision = decisions.get(x.item_id)
        out.append(ReviewItem(
            item_id=x.item_id, image=paths.abs(image), image_rel=image, features=list(x.previous_features),
            origin=x.previous_origin, caption=panel.caption if panel else str(item.provenance.get("notes") or ""),
            excerpts=list(panel.excerpts) if panel else [], paper=panel.source_pdf if panel else item.image,
            kept=True, filter_score=decision.score if decision else None,
            filter_reasons=list(decision.reasons) if decision else [], rejected_by=x.reviewer,
            rejection=_rejection(x)))
    return out


def _rejection(x: ExpertLabel) -> str:
    what = "not a fractograph" if x.not_fractograph else "no feature"
    return f"{what} (reviewed {x.reviewed_at})" + (f": {x.note}" if x.note else "")
