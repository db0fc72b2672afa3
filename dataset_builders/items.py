"""Assemble the dataset's items: kept, deduplicated, labelled panels plus the manual collection.

Reads stages/panels, stages/filter.jsonl, stages/dedup.json, stages/labels.jsonl and
stages/manual/items.json; writes stages/items.jsonl (one records.Item per image, sorted by id).
A mined image that is also in the manual collection becomes one item: the manual labels win, and
the item keeps the mined image's source papers so that the split still keeps those papers together.
Expert review labels (OUT/review/expert_labels.jsonl, written by ``python -m dataset_builders.review import``)
win over both (manual.apply_expert_labels).
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

from dataset_builders.config import BuildConfig
from dataset_builders.dedup import iter_groups
from dataset_builders.kept_lines import KeptLines, key_of
from dataset_builders.labelling.multipanel import REASON as UNSPLIT
from dataset_builders.manual import EXPERT_LABELS_NAME, apply_expert_labels
from dataset_builders.panels_by_paper import PanelsByPaper
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
from dataset_builders.stage_cache import StageKeys, file_digest, library_versions
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import iter_jsonl, open_text_atomic, read_model, write_jsonl_atomic


def load_panels(paths: StagePaths) -> dict[str, PanelRecord]:
    """{panel id: panel} of every paper (the whole corpus: the review tools; stages read paper by paper)."""
    panels: dict[str, PanelRecord] = {}
    for f in sorted(paths.panels.glob("*.json")):
        for p in read_model(f, PaperPanels).panels:
            panels[p.panel_id] = p
    return panels


def load_manual_items(paths: StagePaths) -> list[Item]:
    f = paths.manual / "items.json"
    if not f.exists():
        return []
    return [Item.model_validate(i) for i in json.loads(f.read_text(encoding="utf-8"))]


class ItemTexts:
    """(captions, citing excerpts) of every panel showing an item's image (reprints included, first seen
    first, no repeats); manual items and items whose panels are gone have none. Panels are read paper by
    paper (PanelsByPaper), so the texts of the whole corpus are never held at once.
    """

    def __init__(self, paths: StagePaths, cached_papers: int = 16):
        # only groups with more than one member: a single panel's paper is its item's paper
        self.groups = {g.representative: (g.members, g.paper_ids) for g in iter_groups(paths) if len(g.members) > 1}
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


def labels_in_order(paths: StagePaths) -> Iterator[LabelRecord]:
    """labels.jsonl one record at a time; raises unless it is sorted by item id (the label stage writes it so)."""
    last = ""
    for record in iter_jsonl(paths.labels, LabelRecord) if paths.labels.exists() else ():
        if record.item_id <= last:
            raise ValueError(f"{paths.labels}: {record.item_id} after {last}: not sorted by item id; "
                             "re-run the label stage")
        last = record.item_id
        yield record


class MinedItems:
    """The mined items, made one at a time in representative order from the dedup groups, the filter's keep
    set and labels.jsonl (read alongside, both sorted by id), minus the manual items' twins: a mined image
    within dedup distance of a manual one is taken by the first such manual item (manual labels win; it
    inherits the twin's papers). Problems go to ``unlabelled`` and ``overrides`` as they are met."""

    def __init__(self, paths: StagePaths, config: BuildConfig, manual: list[Item]):
        self.paths, self.config, self.manual = paths, config, manual
        self.unlabelled: list[Problem] = []
        self._overrides: list[tuple[int, int, Problem]] = []  # (manual index, group index, problem)
        self.mined = 0
        self.kept: KeptLines | None = None  # set by run when lines can be kept (see __iter__)
        self.origins: Counter = Counter()  # label origins of the lines given (with kept)

    @property
    def overrides(self) -> list[Problem]:
        """manual_overrides_mined problems, by manual item, then twin (as when every twin was looked up at once)."""
        return [p for _, _, p in sorted(self._overrides, key=lambda t: t[:2])]

    def __iter__(self) -> Iterator[Item | str]:
        """Items; with ``kept`` (KeptLines: no manual items, no expert labels) their items.jsonl lines instead,
        copied when the item's inputs are those an earlier build made the line from, else made and kept."""
        paths, kept = self.paths, self.kept
        panels = PanelsByPaper(paths)  # groups sorted by representative: paper by paper
        keep = {d.panel_id for d in iter_jsonl(paths.filter, FilterDecision) if d.keep} if paths.filter.exists() else set()
        labels = labels_in_order(paths)
        label = next(labels, None)
        digests: dict[str, str] = {}  # paper id -> sha256 of its panels file
        for seq, group in enumerate(sorted(iter_groups(paths), key=lambda g: g.representative)):
            rep, key = group.representative, ""
            while label is not None and label.item_id < rep:  # a found panel's id is the representative
                label = next(labels, None)
            found = label if label is not None and label.item_id == rep else None
            if kept is not None and rep in keep and found is not None and found.status == "labelled" and found.features:
                key = self._key(group, found, digests)
                line = kept.take(rep, key)
                if line is not None:
                    self.mined += 1
                    self.origins[found.origin] += 1
                    kept.record(rep, key, line)  # kept again for the next build, as augment keeps its plans
                    yield line[0]
                    continue
            panel = panels.get(rep, group.paper_ids)
            if panel is None:
                raise ValueError(f"{paths.dedup}: group {rep} names a panel that no file under {paths.panels} holds "
                                 "(stage files of different runs: re-run from the dedup stage)")
            if panel.panel_id not in keep:  # dedup only groups kept panels; guard against stale files
                continue
            if found is None or found.status != "labelled" or not found.features:
                self.unlabelled.append(_unlabelled(panel, found))
                continue
            item = _mined_item(panel, group, found, panels.source(panel.paper_id))
            if kept is not None:  # no manual items: no twin to look for
                self.mined += 1
                self.origins[item.label_origin] += 1
                text = item.model_dump_json()
                if panel.paper_id in group.paper_ids:  # its source read from a paper the key holds
                    kept.record(rep, key, [text])
                yield text
                continue
            owner = next((k for k, m in enumerate(self.manual)
                          if hamming(item.phash, m.phash) <= self.config.dedup_max_distance), None)
            if owner is None:
                self.mined += 1
                yield item
                continue
            m = self.manual[owner]
            m.paper_ids = sorted(set(m.paper_ids) | set(item.paper_ids))
            m.provenance["replaces"] = item.item_id
            self._overrides.append((owner, seq, Problem(
                file=str(m.provenance.get("file", m.item_id)), stage="manual", reason="manual_overrides_mined",
                detail=f"manual labels replace the caption labels of {item.item_id}", item_id=item.item_id)))

    def _key(self, group: DuplicateGroup, label: LabelRecord, digests: dict[str, str]) -> str:
        """What a mined item's line is made from: its group, its label record and its papers' panels files."""
        for paper in group.paper_ids:
            if paper not in digests:
                digests[paper] = file_digest(self.paths.panels / f"{paper}.json")
        return key_of(group.representative, *group.members, "\x1e", *group.paper_ids, "\x1e",
                      *(digests[p] for p in group.paper_ids), "\x1e", label.model_dump_json())


def _unlabelled(panel: PanelRecord, label: LabelRecord | None) -> Problem:
    reason = "label_failed" if label is not None and label.status == "failed" else "no_features"
    if label is not None and label.detail.startswith(UNSPLIT):
        reason = UNSPLIT  # a whole image for panels with different features (labelling.multipanel)
    detail = label.detail if label is not None and label.detail else "the labeller found no vocabulary feature"
    return Problem(file=panel.source_pdf, stage="label", reason=reason, detail=detail, paper_id=panel.paper_id,
                   item_id=panel.panel_id)


def in_id_order(mined: Iterable[Item], manual: list[Item]) -> Iterator[Item]:
    """Mined items (in id order) and manual items, sorted by id. A manual item is complete only once every
    mined item was seen (its twins add papers), so mined items whose id comes after a manual one wait for
    the end; with content-hash paper ids (hex digits, before "manual-") none do."""
    manual = sorted(manual, key=lambda i: i.item_id)
    held: list[Item] = []
    for item in mined:
        if manual and item.item_id > manual[0].item_id:
            held.append(item)
        else:
            yield item
    yield from heapq.merge(held, manual, key=lambda i: i.item_id)


def kept_path(paths: StagePaths) -> Path:
    return paths.stages / "items_kept.tsv"


def check_inputs(paths: StagePaths) -> None:
    """Refuse to run on mined panels whose filter, dedup or label file is missing (a stage that never ran or
    was deleted): read as empty, every mined item was silently left out (or reported as unlabelled)."""
    if not any(paths.panels.glob("*.json")):  # nothing mined: the manual images alone
        return
    missing = [f"{f} (stage {stage})" for f, stage in ((paths.filter, "filter"), (paths.dedup, "dedup"),
                                                       (paths.labels, "label")) if not f.exists()]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)}: the mined panels cannot become items; re-run from "
                                "that stage (--from-stage)")


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Write stages/items.jsonl, item by item as the groups are read (the corpus' items are never held).
    Without manual items and expert labels (the literature loop's update) each mined item's line is kept
    (stages/items_kept.tsv, kept_lines) and copied by the next build when its inputs are the same."""
    check_inputs(paths)
    manual = load_manual_items(paths)
    mined = MinedItems(paths, config, manual)
    expert_problems: list[Problem] = []
    origins: Counter = Counter()
    expert_file = paths.out / "review" / EXPERT_LABELS_NAME

    def counted(items: Iterable[Item]) -> Iterator[Item]:
        for item in items:
            origins[item.label_origin] += 1
            yield item

    if manual or expert_file.exists():
        n = write_jsonl_atomic(paths.items, counted(apply_expert_labels(
            in_id_order(mined, manual), expert_file, expert_problems)))
    else:
        # a kept line is pydantic's serialisation of the Item: its version is part of the key
        settings = {"dedup_max_distance": config.dedup_max_distance, "format": "items-kept-1"} \
            | library_versions("pydantic")
        with ExitStack() as stack:
            mined.kept = KeptLines.open(kept_path(paths), StageKeys(["dataset_builders.items"], settings).base, stack)
            with open_text_atomic(paths.items) as fh:
                n = 0
                for line in mined:
                    fh.write(line + "\n")
                    n += 1
        origins = mined.origins
    problems = mined.unlabelled + mined.overrides + expert_problems
    return StageResult(stage="items", problems=problems, counts={
        "items": n, "mined": mined.mined, "manual": len(manual), "manual_overrides": len(mined.overrides),
        "dropped_unlabelled": len(mined.unlabelled),
        "expert_labelled": origins["expert"],
        "expert_dropped": len(expert_problems),
    })
