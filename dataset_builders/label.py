"""Stage 5, label: one LabelRecord per deduplicated image, from the configured labeller.

Reads stages/panels/*.json, stages/filter.jsonl and stages/dedup.json; writes stages/labels.jsonl (one
records.LabelRecord per dedup group, item_id = the representative's panel id, sorted by item_id).

Each dedup group becomes one ``labelling.base.LabelTask`` holding the representative and every other member
(the same image reprinted elsewhere), so a labeller sees all the text written about that image; the
caption-rule labeller takes the union of the members' labels (see ``labelling.caption_rules.CaptionRulesLabeler``).
A group whose representative is missing from the panels files or was not kept by the filter is a
Problem, not a label.

With a model labeller (openai, gemini, vllm: ``labelling.llm``) the stage also writes
stages/label_sources.jsonl: for every image, the model's features beside the caption rules' features
(computed offline for comparison), so the dataset card can count and list where they disagree. The label
records themselves keep their origin ("model:<name>"); manual labels still win later (items stage).
With --dry-run the stage prints the request/token/cost estimate and writes nothing.

Usage:
    python -m dataset_builders.label --out runs/ds1 --labeler openai --label-model gpt-5.2 --reasoning-effort high
    python -m dataset_builders.label --out runs/ds1 --labeler gemini --label-model gemini-2.5-pro --dry-run
    python -m dataset_builders.build --out runs/ds1 --from-stage label --to-stage label
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from dataset_builders.labelling.caption_rules import ORIGIN as CAPTION_RULES_ORIGIN
from dataset_builders.config import BuildConfig
from dataset_builders.labelling.registry import CaptionRulesLabeler, LabelTask, get_labeler
from dataset_builders.records import (
    DuplicateGroup,
    FilterDecision,
    LabelRecord,
    PanelRecord,
    PaperPanels,
    Problem,
    StageResult,
)
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, read_model, write_jsonl_atomic

STAGE = "label"


class LabelSources(BaseModel):
    """One line of stages/label_sources.jsonl: the model's label beside the caption rules' label."""

    model_config = ConfigDict(extra="forbid")

    item_id: str
    model_origin: str
    model_status: str
    model: list[str]
    caption_rules: list[str]
    only_model: list[str]
    only_caption_rules: list[str]

    @property
    def disagrees(self) -> bool:
        return self.model_status == "labelled" and bool(self.only_model or self.only_caption_rules)


def sources_path(paths: StagePaths) -> Path:
    return paths.stages / "label_sources.jsonl"


def compare_with_caption_rules(tasks: list[LabelTask], records: dict[str, LabelRecord]) -> list[LabelSources]:
    """Caption-rule labels (offline) beside each model label, sorted by item id."""
    rules = CaptionRulesLabeler()
    out: list[LabelSources] = []
    for task in sorted(tasks, key=lambda t: t.item_id):
        record = records[task.item_id]
        rule = rules.label_task(task).features
        out.append(LabelSources(item_id=task.item_id, model_origin=record.origin, model_status=record.status,
                                model=record.features, caption_rules=rule,
                                only_model=[f for f in record.features if f not in rule],
                                only_caption_rules=[f for f in rule if f not in record.features]))
    return out


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
    del panels, decisions  # the tasks keep the panels they need; the rest (rejected panels) goes now

    if config.dry_run:
        return dry_run(labeler, tasks, problems)

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
    if labeler.origin != CAPTION_RULES_ORIGIN:
        write_jsonl_atomic(sources_path(paths), compare_with_caption_rules(tasks, by_id))
    else:
        sources_path(paths).unlink(missing_ok=True)  # a rules-only run has nothing to compare
    summary = getattr(labeler, "summary", None)
    if summary is not None:
        print(f"[  label] {labeler.origin}: {summary.line()}", flush=True)

    counts = {
        "labelled": sum(r.status == "labelled" for r in records),
        "no_features": sum(r.status == "no_features" for r in records),
        "failed": sum(r.status == "failed" for r in records),
    }
    counts.update({k: v for k, v in sorted(outcome.counts.items()) if k not in counts})
    return StageResult(stage=STAGE, counts=counts, problems=problems)


def dry_run(labeler, tasks: list[LabelTask], problems: list[Problem]) -> StageResult:
    """Print what labelling would send and cost; write nothing."""
    estimate_fn = getattr(labeler, "estimate", None)
    if estimate_fn is None:
        print(f"[  label] dry run: {labeler.name} is offline: {len(tasks)} image(s), no requests, no cost")
        return StageResult(stage=STAGE, counts={"requests": 0, "images": len(tasks)}, problems=problems)
    estimate = estimate_fn(tasks)
    print(f"[  label] dry run for {labeler.origin} (nothing sent):")
    for line in estimate.lines():
        print(f"          {line}")
    counts = {"requests": estimate.requests, "cached": estimate.cached, "image_tokens": estimate.image_tokens,
              "text_tokens": estimate.text_tokens, "output_tokens": estimate.output_tokens,
              "cost_microusd": -1 if estimate.cost_usd is None else round(estimate.cost_usd * 1e6)}
    return StageResult(stage=STAGE, counts=counts, problems=problems)


# --- command line: the label stage alone on an existing build ----------------------------------------

LABEL_SETTINGS = ("labeler", "label_model", "reasoning_effort", "base_url", "concurrency", "max_cost",
                  "label_max_pixels", "label_max_tokens", "label_temperature", "label_timeout",
                  "label_max_attempts", "label_min_confidence", "dry_run")


def build_parser() -> argparse.ArgumentParser:
    from dataset_builders.config import add_config_arguments

    parser = argparse.ArgumentParser(
        prog="python -m dataset_builders.label",
        description="Run the label stage alone on an existing build (OUT/stages from mine..dedup), e.g. with an "
                    "LLM. Other settings (pixel budget, ...) come from OUT/build_config.json. Afterwards: "
                    "python -m dataset_builders.build --out OUT --from-stage manual",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="the build's output folder")
    add_config_arguments(parser, LABEL_SETTINGS, suppress_defaults=True)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def config_for(out: Path, given: dict) -> BuildConfig:
    """OUT/build_config.json (if any) with the label settings given on the command line on top."""
    stored = out / "build_config.json"
    base = json.loads(stored.read_text(encoding="utf-8")) if stored.exists() else {}
    base.pop("dry_run", None)  # a stored dry run must not turn this run into one
    base.update(given)
    base["out"] = out
    return BuildConfig.model_validate(base)


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    from dataset_builders.stages import collect_report, run_stage, write_report
    from dataset_builders.labelling.registry import LabelerUnavailableError, UnknownLabelerError

    ns = build_parser().parse_args(argv)
    given = {k: v for k, v in vars(ns).items() if k in LABEL_SETTINGS}
    try:
        config = config_for(ns.out, given)
        get_labeler(config.labeler, config)  # fail before any work if it cannot run
    except ValidationError as exc:
        print("error: invalid settings: " + "; ".join(f"{e['loc'][0] if e['loc'] else ''}: {e['msg']}"
                                                      for e in exc.errors()), file=sys.stderr)
        return 2
    except (UnknownLabelerError, LabelerUnavailableError) as exc:
        print(f"error: --labeler {config.labeler}: {exc}", file=sys.stderr)
        return 2
    paths = StagePaths(config.out)
    try:
        if config.dry_run:
            result = run(paths, config, progress=not ns.quiet)
        else:
            result = run_stage(STAGE, paths, config, progress=not ns.quiet)
            write_report(paths, collect_report(paths))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: replies received so far are cached; run the same command again to resume",
              file=sys.stderr)
        return 130
    print("[  label] " + ", ".join(f"{k} {v}" for k, v in result.counts.items()))
    if not config.dry_run:
        print(f"labels: {paths.labels}; next: python -m dataset_builders.build --out {config.out} --from-stage manual")
    return 0


if __name__ == "__main__":
    sys.exit(main())
