"""Stage 5, label: one LabelRecord per deduplicated image, from the configured labeller.

Reads stages/panels/*.json, stages/filter.jsonl and stages/dedup.json; writes stages/labels.jsonl (one
records.LabelRecord per dedup group, item_id = the representative's panel id, sorted by item_id).

Each dedup group becomes one ``labelers.LabelTask`` holding the representative and every other member
(the same image reprinted elsewhere), so a labeller sees all the text written about that image; the
caption-rule labeller takes the union of the members' labels (see ``labelers.CaptionRulesLabeler``).
A group whose representative is missing from the panels files or was not kept by the filter is a
Problem, not a label.

Usage:
    python -m dataset_builders.build --out runs/ds1 --from-stage label --to-stage label
"""

from __future__ import annotations

import json
from pathlib import Path

from dataset_builders.config import BuildConfig
from dataset_builders.labelers import LabelTask, get_labeler
from dataset_builders.records import (
    DuplicateGroup,
    FilterDecision,
    LabelRecord,
    PanelRecord,
    PaperPanels,
    Problem,
    StageResult,
)
from dataset_builders.stage_files import StagePaths, read_jsonl, read_model, write_jsonl_atomic

STAGE = "label"


def _require(path: Path, made_by: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"the label stage needs {path}: run the {made_by} stage first")


def load_panels(paths: StagePaths, problems: list[Problem]) -> dict[str, PanelRecord]:
    """Every panel of every stages/panels/<paper_id>.json; an unreadable file becomes a Problem."""
    panels: dict[str, PanelRecord] = {}
    for f in sorted(paths.panels.glob("*.json")):
        try:
            paper = read_model(f, PaperPanels)
        except (OSError, ValueError) as exc:
            problems.append(Problem(file=paths.rel(f), stage=STAGE, reason="bad_panels_file",
                                    detail=str(exc).splitlines()[0], paper_id=f.stem, severity="failed"))
            continue
        for p in paper.panels:
            panels[p.panel_id] = p
    return panels


def load_groups(paths: StagePaths) -> list[DuplicateGroup]:
    raw = json.loads(paths.dedup.read_text(encoding="utf-8"))
    return [DuplicateGroup.model_validate(g) for g in raw]


def build_tasks(paths: StagePaths, panels: dict[str, PanelRecord], decisions: dict[str, FilterDecision],
                groups: list[DuplicateGroup], problems: list[Problem]) -> list[LabelTask]:
    """One task per usable dedup group, sorted by representative id."""
    tasks: list[LabelTask] = []
    for group in sorted(groups, key=lambda g: g.representative):
        rep = panels.get(group.representative)
        if rep is None:
            problems.append(Problem(file=group.representative, stage=STAGE, reason="unknown_panel",
                                    detail="dedup names a representative that no panels file holds",
                                    item_id=group.representative, severity="failed"))
            continue
        decision = decisions.get(rep.panel_id)
        if decision is None or not decision.keep:
            problems.append(Problem(file=rep.source_pdf, stage=STAGE, reason="not_kept",
                                    detail="dedup representative " + ("has no filter decision" if decision is None
                                                                      else "was rejected by the filter"),
                                    paper_id=rep.paper_id, item_id=rep.panel_id))
            continue
        others = [panels[m] for m in group.members if m != rep.panel_id and m in panels]
        tasks.append(LabelTask(item_id=rep.panel_id, panels=(rep, *others), image=paths.abs(rep.image)))
    return tasks


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Label every dedup group's representative; write stages/labels.jsonl."""
    _require(paths.filter, "filter")
    _require(paths.dedup, "dedup")
    labeler = get_labeler(config.labeler, config)
    problems: list[Problem] = []
    panels = load_panels(paths, problems)
    decisions = {d.panel_id: d for d in read_jsonl(paths.filter, FilterDecision)}
    tasks = build_tasks(paths, panels, decisions, load_groups(paths), problems)

    outcome = labeler.label(tasks, progress=progress)
    problems.extend(outcome.problems)
    by_id: dict[str, LabelRecord] = {}
    for record in outcome.records:
        by_id.setdefault(record.item_id, record)
    expected = {t.item_id for t in tasks}
    for task in tasks:  # a labeller that drops an item must not make it vanish silently
        if task.item_id not in by_id:
            by_id[task.item_id] = LabelRecord(item_id=task.item_id, features=[], origin=labeler.origin,
                                              prompt_version=labeler.prompt_version, status="failed",
                                              detail=f"labeller {labeler.name} returned no label")
    records = sorted((r for r in by_id.values() if r.item_id in expected), key=lambda r: r.item_id)
    write_jsonl_atomic(paths.labels, records)

    counts = {
        "labelled": sum(r.status == "labelled" for r in records),
        "no_features": sum(r.status == "no_features" for r in records),
        "failed": sum(r.status == "failed" for r in records),
    }
    counts.update({k: v for k, v in sorted(outcome.counts.items()) if k not in counts})
    return StageResult(stage=STAGE, counts=counts, problems=problems)
