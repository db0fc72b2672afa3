"""Assemble the dataset's items: kept, deduplicated, labelled panels plus the manual collection.

Reads stages/panels, stages/filter.jsonl, stages/dedup.json, stages/labels.jsonl and
stages/manual/items.json; writes stages/items.jsonl (one records.Item per image, sorted by id).
A mined image that is also in the manual collection becomes one item: the manual labels win, and
the item keeps the mined image's source papers so that the split still keeps those papers together.
Expert review labels (OUT/review/expert_labels.jsonl, written by ``python -m dataset_builders.review import``)
win over both (manual.apply_expert_labels).
"""

from __future__ import annotations

import json
from functools import lru_cache

from dataset_builders.config import BuildConfig
from dataset_builders.labelling.multipanel import REASON as UNSPLIT
from dataset_builders.manual import EXPERT_LABELS_NAME, apply_expert_labels
from dataset_builders.pdf.numbers import number_json
from dataset_builders.perceptual_hash import hamming
from dataset_builders.records import (
    DuplicateGroup,
    FilterDecision,
    Item,
    LabelRecord,
    PanelRecord,
    PaperPanels,
    Problem,
    SourceMeta,
    StageResult,
)
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, read_model, write_jsonl_atomic


def load_panels(paths: StagePaths) -> dict[str, PanelRecord]:
    """{panel id: panel} of every paper (the whole corpus: the review tools; stages read paper by paper)."""
    panels: dict[str, PanelRecord] = {}
    for f in sorted(paths.panels.glob("*.json")):
        for p in read_model(f, PaperPanels).panels:
            panels[p.panel_id] = p
    return panels


def load_groups(paths: StagePaths) -> list[DuplicateGroup]:
    if not paths.dedup.exists():
        return []
    return [DuplicateGroup.model_validate(g) for g in json.loads(paths.dedup.read_text(encoding="utf-8"))]


def load_manual_items(paths: StagePaths) -> list[Item]:
    f = paths.manual / "items.json"
    if not f.exists():
        return []
    return [Item.model_validate(i) for i in json.loads(f.read_text(encoding="utf-8"))]


class PanelsByPaper:
    """Panel records looked up by id among given papers, read from stages/panels/<paper_id>.json when asked;
    the last few papers are kept (callers go in id order, so papers are read about once), never the corpus."""

    def __init__(self, paths: StagePaths, cached_papers: int = 16):
        self.paths = paths
        self._paper = lru_cache(maxsize=cached_papers)(self._read_paper)

    def _read_paper(self, paper_id: str) -> tuple[dict[str, PanelRecord], SourceMeta]:
        f = self.paths.panels / f"{paper_id}.json"
        if not f.is_file():
            return {}, SourceMeta()
        paper = read_model(f, PaperPanels)
        source = SourceMeta.model_validate(paper.model_dump(include=set(SourceMeta.model_fields)))
        return {p.panel_id: p for p in paper.panels}, source

    def get(self, panel_id: str, paper_ids: list[str]) -> PanelRecord | None:
        for paper in paper_ids:
            panel = self._paper(paper)[0].get(panel_id)
            if panel is not None:
                return panel
        return None

    def source(self, paper_id: str) -> SourceMeta:
        """The paper's title, DOI, licence, ... (SourceMeta); empty when its panels file is gone."""
        return self._paper(paper_id)[1]


class ItemTexts:
    """(captions, citing excerpts) of every panel showing an item's image (reprints included, first seen
    first, no repeats); manual items and items whose panels are gone have none. Panels are read paper by
    paper (PanelsByPaper), so the texts of the whole corpus are never held at once.
    """

    def __init__(self, paths: StagePaths, cached_papers: int = 16):
        # only groups with more than one member: a single panel's paper is its item's paper
        self.groups = {g.representative: (g.members, g.paper_ids) for g in load_groups(paths) if len(g.members) > 1}
        self.panels = PanelsByPaper(paths, cached_papers)

    def panels_of(self, item: Item) -> list[PanelRecord]:
        """The panels showing the item's image (reprints included, in dedup-group order); [] for manual items."""
        members, paper_ids = self.groups.get(item.item_id, ([item.item_id], item.paper_ids))
        return [panel for pid in members if (panel := self.panels.get(pid, paper_ids)) is not None]

    def __call__(self, item: Item, shown: list[PanelRecord] | None = None) -> tuple[list[str], list[str]]:
        """(captions, excerpts) of the item, from ``shown`` (its panels_of) when the caller has them already."""
        captions: list[str] = []
        excerpts: list[str] = []
        for panel in self.panels_of(item) if shown is None else shown:
            if panel.caption and panel.caption not in captions:
                captions.append(panel.caption)
            excerpts += [e for e in panel.excerpts if e not in excerpts]
        return captions, excerpts


def item_texts(paths: StagePaths, items: list[Item]) -> dict[str, tuple[list[str], list[str]]]:
    """{item_id: (captions, citing excerpts)} of the items (ItemTexts says which)."""
    texts = ItemTexts(paths)
    return {item.item_id: texts(item) for item in items}


def _mined_item(panel: PanelRecord, group: DuplicateGroup, label: LabelRecord, source: SourceMeta) -> Item:
    """The item of a kept, labelled representative panel; doi / licence / source_url are those of the
    representative's paper (a reprint in another paper keeps the first paper's licence)."""
    return Item(
        item_id=panel.panel_id,
        image=panel.image,
        width=panel.width,
        height=panel.height,
        phash=panel.phash,
        paper_ids=sorted(group.paper_ids),
        features=label.features,
        label_origin=label.origin,
        provenance={
            "source_pdf": panel.source_pdf,
            "page": panel.page,
            "figure_id": panel.figure_id,
            "figure_number": number_json(panel.figure_number),
            "panel": panel.letter,
            "panel_name": panel.name,  # a panel named otherwise ("ii", "left"), else None
            "panel_box": list(panel.box) if panel.box else None,  # pixels of the mined figure image (x0, y0, x1, y1)
            "panel_page_box": list(panel.page_box) if panel.page_box else None,  # PDF points on that page
            "split_method": panel.split_method,
            "duplicates": len(group.members) - 1,
            "prompt_version": label.prompt_version,
            "doi": source.doi,
            "licence": source.licence,
            "licence_url": source.licence_url,
            "source_url": source.source_url,
        },
    )


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    panels = PanelsByPaper(paths)  # groups come sorted by representative: paper by paper
    keep = {d.panel_id for d in read_jsonl(paths.filter, FilterDecision) if d.keep} if paths.filter.exists() else set()
    labels = {r.item_id: r for r in read_jsonl(paths.labels, LabelRecord)} if paths.labels.exists() else {}
    problems: list[Problem] = []
    mined: dict[str, Item] = {}
    for group in load_groups(paths):
        panel = panels.get(group.representative, group.paper_ids)
        if panel is None:
            raise KeyError(group.representative)  # as the dict of every panel did: dedup names an unknown panel
        if panel.panel_id not in keep:  # dedup only groups kept panels; guard against stale files
            continue
        label = labels.get(panel.panel_id)
        if label is None or label.status != "labelled" or not label.features:
            reason = "label_failed" if label is not None and label.status == "failed" else "no_features"
            if label is not None and label.detail.startswith(UNSPLIT):
                reason = UNSPLIT  # a whole image for panels with different features (labelling.multipanel)
            detail = label.detail if label is not None and label.detail else "the labeller found no vocabulary feature"
            problems.append(Problem(file=panel.source_pdf, stage="label", reason=reason, detail=detail,
                                    paper_id=panel.paper_id, item_id=panel.panel_id))
            continue
        mined[panel.panel_id] = _mined_item(panel, group, label, panels.source(panel.paper_id))

    manual = load_manual_items(paths)
    replaced = 0
    for m in manual:
        twins = [i for i in mined.values() if hamming(i.phash, m.phash) <= config.dedup_max_distance]
        for twin in twins:  # manual labels win; the manual item inherits the twin's papers
            m.paper_ids = sorted(set(m.paper_ids) | set(twin.paper_ids))
            m.provenance["replaces"] = twin.item_id
            del mined[twin.item_id]
            replaced += 1
            problems.append(Problem(file=str(m.provenance.get("file", m.item_id)), stage="manual",
                                    reason="manual_overrides_mined",
                                    detail=f"manual labels replace the caption labels of {twin.item_id}",
                                    item_id=twin.item_id))
    items = sorted([*mined.values(), *manual], key=lambda i: i.item_id)
    items, expert_problems = apply_expert_labels(items, paths.out / "review" / EXPERT_LABELS_NAME)
    problems += expert_problems
    write_jsonl_atomic(paths.items, items)
    return StageResult(stage="items", problems=problems, counts={
        "items": len(items), "mined": len(mined), "manual": len(manual), "manual_overrides": replaced,
        "dropped_unlabelled": sum(p.stage == "label" for p in problems),
        "expert_labelled": sum(i.label_origin == "expert" for i in items),
        "expert_dropped": len(expert_problems),
    })
