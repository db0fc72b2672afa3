"""Stage 5, label: one LabelRecord per deduplicated image, from the configured labeller.

Reads stages/panels/*.json, stages/filter.jsonl and stages/dedup.json; writes stages/labels.jsonl (one
records.LabelRecord per dedup group, item_id = the representative's panel id, sorted by item_id).

Each dedup group becomes one ``labelling.base.LabelTask`` holding the representative and every other member
(the same image reprinted elsewhere), so a labeller sees all the text written about that image; the
caption-rule labeller takes the union of the members' labels (see ``labelling.caption_rules.CaptionRulesLabeler``).
A group whose representative is missing from the panels files or was not kept by the filter is a
Problem, not a label.

Memory: tasks are made paper by paper when the labeller asks for them (``iter_tasks``). A labeller with
``label_stream`` (the caption rules) takes them a few chunks at a time and its records go straight to
labels.jsonl, so the stage holds the groups and the filter's keep flags, not the corpus' panels (at 16,000
panels the task list alone was ~53 MiB). A model labeller gets the whole list: it batches, caches and
summarises over it.

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
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from dataset_builders.labelling.caption_rules import ORIGIN as CAPTION_RULES_ORIGIN
from dataset_builders.config import BuildConfig
from dataset_builders.dedup import iter_groups
from dataset_builders.panels_by_paper import PanelsByPaper
from dataset_builders.labelling.registry import CaptionRulesLabeler, LabelTask, get_labeler
from dataset_builders.records import (
    DuplicateGroup,
    FilterDecision,
    LabelRecord,
    Problem,
    StageResult,
)
from dataset_builders.stage_cache import (
    Entry,
    StageKeys,
    iter_entries,
    library_versions,
    pin_code,
    read_index,
    write_entry,
)
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import file_identity, iter_jsonl, open_text_atomic, write_jsonl_atomic

STAGE = "label"
KEYED_MODULES = ("dataset_builders.label", "dataset_builders.labelling.caption_rules")  # what its keys hash


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


def load_groups(paths: StagePaths) -> list[DuplicateGroup]:
    """The dedup groups, sorted by representative id: paper by paper (a panel id starts with its paper id);
    a representative named by two groups raises naming the file."""
    groups = sorted(iter_groups(paths), key=lambda g: g.representative)
    for a, b in zip(groups, groups[1:]):
        if a.representative == b.representative:
            raise _twice(paths, a.representative)
    return groups


def _twice(paths: StagePaths, representative: str) -> ValueError:
    return ValueError(f"{paths.dedup}: representative {representative} heads two groups (dedup writes each once)")


class GroupsOutOfOrder(ValueError):
    """dedup.json's groups are not in strictly increasing representative order (the order dedup writes)."""


class StreamedGroups:
    """dedup.json's groups in representative order, read from the file again each time they are iterated, so
    the stage never holds the corpus' groups (14,000 group models: ~12 MiB of the main process at 2,000 papers,
    ~50 ms CPU a pass). dedup writes them in that order; an iteration that meets another order raises
    GroupsOutOfOrder (the caller then takes load_groups' sorted list)."""

    def __init__(self, paths: StagePaths):
        self.paths = paths
        self.identity: tuple[int, int, int] | None = None  # the file's (inode, size, mtime) at the first pass
        self.passes = 0

    def __iter__(self) -> Iterator[DuplicateGroup]:
        identity = file_identity(self.paths.dedup)
        if self.passes and identity != self.identity:  # another writer between two passes
            raise ValueError(f"{self.paths.dedup}: changed while the label stage read it (run the build again)")
        self.identity, self.passes = identity, self.passes + 1
        last = None
        for group in iter_groups(self.paths):
            if last is not None and group.representative <= last:
                if group.representative == last:
                    raise _twice(self.paths, last)
                raise GroupsOutOfOrder(f"{self.paths.dedup}: group {group.representative} after {last}")
            last = group.representative
            yield group


def load_kept(paths: StagePaths) -> dict[str, bool]:
    """{panel id: kept?} of every filter decision (the decisions' scores and reasons are not needed here)."""
    return {d.panel_id: d.keep for d in iter_jsonl(paths.filter, FilterDecision)}


def iter_tasks(paths: StagePaths, kept: dict[str, bool], groups: Iterable[DuplicateGroup],
               problems: list[Problem], reused: Collection[str] = (), passed: deque[str] | None = None,
               readable: Iterable[str] = ()) -> Iterator[LabelTask]:
    """One task per usable dedup group, in the groups' order (by representative id), made when asked.

    Panels are read paper by paper (PanelsByPaper: a group's members are looked up in its papers), so
    only the tasks a labeller holds and a few papers' panels are in memory, never the corpus' panels.
    A representative no readable panels file holds, or one the filter did not keep, becomes a Problem;
    so does every unreadable panels file: when the tasks run out, those problems go in front of the
    groups' (sorted by file, as when the stage read every file first), so the report keeps its order.
    reused: representatives whose earlier label is kept (LabelCache): no task, their id goes to ``passed``
    as the groups pass it; readable: papers whose panels file an earlier build read with this code (not
    read again to look for problems).
    """
    panels = PanelsByPaper(paths, tolerant=True)
    first = len(problems)
    for group in groups:
        if group.representative in reused:
            passed.append(group.representative)
            continue
        rep = panels.get(group.representative, group.paper_ids)
        if rep is None:
            problems.append(Problem(file=group.representative, stage=STAGE, reason="unknown_panel",
                                    detail="dedup names a representative that no panels file holds",
                                    item_id=group.representative, severity="failed"))
            continue
        keep = kept.get(rep.panel_id)
        if not keep:
            problems.append(Problem(file=rep.source_pdf, stage=STAGE, reason="not_kept",
                                    detail="dedup representative " + ("has no filter decision" if keep is None
                                                                      else "was rejected by the filter"),
                                    paper_id=rep.paper_id, item_id=rep.panel_id))
            continue
        others = [p for m in group.members if m != rep.panel_id and (p := panels.get(m, group.paper_ids))]
        yield LabelTask(item_id=rep.panel_id, panels=(rep, *others), image=paths.abs(rep.image))
    panels.read.update(readable)
    if passed is not None:  # LabelCache: the papers read well, for the next build
        passed.parsed = panels.parsed
    panels.check_unread()  # a file no group names (unreadable ones cannot be named) is still reported
    problems[first:first] = [Problem(file=paths.rel(paths.panels / f"{paper_id}.json"), stage=STAGE,
                                     reason="bad_panels_file", detail=error, paper_id=paper_id, severity="failed")
                             for paper_id, error in sorted(panels.unreadable.items())]


def in_id_order(entries: Iterable[Entry], counts: Counter) -> Iterator[Entry]:
    """The label entries as they come, counted by status (Entry.meta); raises unless their item ids strictly
    increase (the stream's contract: one record per task, in task order, so labels.jsonl stays sorted and unique)."""
    last = ""
    for entry in entries:
        if entry.entry_id <= last:
            raise ValueError(f"labeller stream out of order: {entry.entry_id} after {last}")
        last = entry.entry_id
        counts[entry.meta] += 1
        yield entry


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Label every dedup group's representative; write stages/labels.jsonl."""
    _require(paths.filter, "filter")
    _require(paths.dedup, "dedup")
    labeler = get_labeler(config.labeler, config)
    problems: list[Problem] = []
    kept = load_kept(paths)
    stream = getattr(labeler, "label_stream", None)
    if stream is not None and not config.dry_run:  # tasks made, labelled and written one chunk at a time (caption rules)
        return run_streamed(paths, labeler, kept, problems, progress)
    tasks = iter_tasks(paths, kept, load_groups(paths), problems)
    if config.dry_run:
        return dry_run(labeler, list(tasks), problems)

    tasks = list(tasks)  # a model labeller batches, caches and summarises over the whole list
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
    return StageResult(stage=STAGE, counts=status_counts(Counter(r.status for r in records), outcome.counts),
                       problems=problems)


def cache_path(paths: StagePaths) -> Path:
    return paths.stages / "label_cache.txt"


class LabelCache:
    """The caption rules' label of each dedup group, kept between builds (stage_cache): reused when this code
    (label + caption rules and what they import), the group (representative, members, papers) and the bytes of
    its papers' panels files are those of the build that made it. Entries "paper:<id>" say that a panels
    file was read without error by this code, so an update need not read it again to look for problems."""

    def __init__(self, paths: StagePaths):
        self.path = cache_path(paths)
        self.keys = StageKeys(list(KEYED_MODULES), library_versions("pydantic"))  # pydantic wrote the cached lines
        self.panels = paths.panels
        self.index = read_index(self.path)
        self._paper_keys: dict[str, str] = {}  # by paper id: ~9 groups per paper ask, one path made

    def paper_key(self, paper: str) -> str:
        if (key := self._paper_keys.get(paper)) is None:
            key = self._paper_keys[paper] = self.keys.paper(self.panels / f"{paper}.json")
        return key

    def group_key(self, group: DuplicateGroup) -> str:
        return self.keys.of(group.model_dump_json(), *map(self.paper_key, group.paper_ids))

    def is_current(self, entry_id: str, key: str) -> bool:
        return self.index.get(entry_id, ("", ""))[0] == key

    def reader(self) -> Callable[[str], Entry]:
        """take(item_id): the cached entry of that id; ids must be asked for in file (= id) order."""
        entries = iter_entries(self.path)

        def take(item_id: str) -> Entry:
            for entry in entries:
                if entry.entry_id == item_id:
                    return entry
            raise ValueError(f"{self.path}: no entry {item_id} (changed during the build?)")
        return take


def run_streamed(paths: StagePaths, labeler, kept: dict[str, bool], problems: list[Problem], progress: bool
                 ) -> StageResult:
    """The caption rules' path: records streamed to labels.jsonl in task order (label_stream's contract);
    groups whose label is current in LabelCache are copied from it, the others labelled. The groups are read
    from dedup.json twice (StreamedGroups), not held."""
    cache = LabelCache(paths)
    groups: Iterable[DuplicateGroup] = StreamedGroups(paths)
    try:
        keys, reused, papers = _group_keys(cache, groups, kept)
    except GroupsOutOfOrder:  # not dedup's order: sorted in memory, as before
        groups = load_groups(paths)
        keys, reused, papers = _group_keys(cache, groups, kept)
    readable = {p for p in papers if cache.is_current(f"paper:{p}", cache.paper_key(p))}
    passed: deque[str] = _Passed()
    tasks = iter_tasks(paths, kept, groups, problems, reused, passed, readable)
    records = labeler.label_stream(tasks, len(keys) - len(reused), progress)

    def merged() -> Iterator[Entry]:  # cached and new records in id order (passed ids precede a new record's)
        take = cache.reader()
        for record in records:
            while passed and passed[0] < record.item_id:
                yield take(passed.popleft())
            yield Entry(record.item_id, keys.get(record.item_id, ""), record.status, [record.model_dump_json() + "\n"])
        while passed:
            yield take(passed.popleft())

    counts: Counter = Counter()
    with open_text_atomic(paths.labels) as out, open_text_atomic(cache.path) as fh:
        for entry in in_id_order(merged(), counts):
            out.writelines(entry.lines)
            write_entry(fh, *entry)
        for paper in sorted(readable | passed.parsed):
            write_entry(fh, f"paper:{paper}", cache.paper_key(paper), "readable", [])
    sources_path(paths).unlink(missing_ok=True)  # a rules-only run has nothing to compare
    return StageResult(stage=STAGE, counts={**status_counts(counts, {}), "reused": len(reused)}, problems=problems)


def _group_keys(cache: LabelCache, groups: Iterable[DuplicateGroup], kept: dict[str, bool]
                ) -> tuple[dict[str, str], set[str], set[str]]:
    """({representative: cache key} of the groups whose representative the filter kept, the representatives
    whose cached label is current, the papers of those groups), in one pass over the groups."""
    keys: dict[str, str] = {}
    reused: set[str] = set()
    papers: set[str] = set()
    for g in groups:
        if kept.get(g.representative):
            key = keys[g.representative] = cache.group_key(g)
            if cache.is_current(g.representative, key):
                reused.add(g.representative)
                papers.update(g.paper_ids)
    return keys, reused, papers


class _Passed(deque):
    """The ids iter_tasks passed over (reused labels), and the papers it parsed once it is done."""

    parsed: set[str] = frozenset()  # type: ignore[assignment]


def status_counts(statuses: Counter, extra: dict[str, int]) -> dict[str, int]:
    counts = {status: statuses[status] for status in ("labelled", "no_features", "failed")}
    counts.update({k: v for k, v in sorted(extra.items()) if k not in counts})
    return counts


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

    from dataset_builders.labelling.registry import (
        LabelerUnavailableError,
        UnknownLabelerError,
    )
    from dataset_builders.stages import collect_report, run_stage, write_report

    ns = build_parser().parse_args(argv)
    pin_code(KEYED_MODULES, KEYED_MODULES)  # the code this command's keys hash, read once now (as a build does)
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
