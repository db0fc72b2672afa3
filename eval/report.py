"""Side-by-side report of evaluation runs: table with 95 % intervals, paired comparisons, per-feature F1, plots.

Usage: python -m eval.report RUN_DIR [RUN_DIR ...] [--out DIR] [--resamples 2000] [--seed 0]

Each RUN_DIR is what eval.run writes (eval/records.py: run_card.json, samples.jsonl, optionally
benchmark_card.json). The first run is the reference of the paired comparisons ("each model vs the
first"), so list the baseline — or the model you want to beat — first.

Writes to --out (default: <parent of the first RUN_DIR>/report):
    report.md                the table (precision first, as in the paper), comparisons, per-feature F1,
                             run details, failure policy, benchmark card
    report.csv               one row per run: every figure with its interval bounds, failures, cost
    metrics_<run>.json       everything computed for one run (figures, intervals, per-label scores,
                             parse statuses, latency, tokens, cost, comparison with the first run)
    per_feature_f1.png, headline_metrics.png

Runs on different benchmarks (benchmark hash) or tasks are refused: their numbers are not comparable.

Failures (a request that produced no reply; eval/records.py) are NOT scored: figures cover the images
that got a reply, failures are counted in their own column and flagged, and paired comparisons use only
images scored in both runs. Every reply IS scored, feature by feature: a name outside the vocabulary is a
false positive; a parse failure names no feature (recall), its rate stands next to the scores, and the
strict columns count it as one wrong answer. Costs come from the run cards (tokens x vlm_api.pricing).

The scoring (figures, intervals, paired comparisons, the comparability check) lives in eval/scores.py; this
module writes what it computes.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fracto_core.files import write_bytes_atomic, write_json_atomic, write_text_atomic
from eval.benchmark import card_markdown, expert_lines
from eval.metrics import DEFAULT_RESAMPLES, Interval
from eval.records import LoadedRun, RunFormatError, read_run
from eval.scores import (
    MULTILABEL_PAIRED,
    MULTIPLE_CHOICE_PAIRED,
    ReportError,
    RunScores,
    check_comparable,
    compare,
    score_run,
)
from eval.task_report import extra_markdown, extra_metrics, extra_plots
from eval.tasks import Task

# (figure key, column title) in table order: precision first, as in the paper.
MULTILABEL_COLUMNS = (
    ("micro_precision", "precision (micro)"), ("micro_recall", "recall (micro)"), ("micro_f1", "F1 (micro)"),
    ("unparseable_share", "parse failures"), ("strict_micro_precision", "precision (strict)"),
    ("strict_micro_f1", "F1 (strict)"), ("macro_f1", "F1 (macro)"), ("sample_precision", "precision (per image)"),
    ("exact_match", "exact match"), ("rare_recall", "recall (rare features)"),
)
MULTIPLE_CHOICE_COLUMNS = (
    ("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("macro_precision", "precision (macro)"),
    ("macro_recall", "recall (macro)"), ("macro_f1", "F1 (macro)"), ("unparseable_share", "parse failures"),
)
FAILURE_POLICY = (
    "Failures (requests that produced no reply after retries: transport or HTTP errors, timeouts, malformed "
    "responses) are not scored: every figure covers the images that got a reply, failures are counted in "
    "their own column, and paired comparisons use only the images scored in both runs. Every reply is "
    "scored feature by feature: vocabulary names and synonyms count, each name outside the vocabulary is a "
    "wrong feature (a false positive). A reply with no answer in the format (empty, invalid, cut at max "
    "tokens) is a parse failure: it names no feature, so it lowers recall and F1 but not precision; the "
    "'parse failures' column gives their share, and the strict columns count each one as a wrong answer. "
    "Precision is n/a, never 0, when a run named no feature at all."
)


def _names(runs: list[LoadedRun]) -> list[str]:
    names = [r.card.model + (f" [context {r.card.context}]" if r.card.context not in (None, "none") else "")
             for r in runs]  # issue 14: context levels side by side
    return [f"{n} ({r.path.name})" if names.count(n) > 1 else n for n, r in zip(names, runs)]


# --- output --------------------------------------------------------------------------------------------

def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or np.isnan(x) else f"{x:.{digits}f}"


def _cell(iv: Interval) -> str:
    if np.isnan(iv.estimate):
        return "n/a"
    return f"{iv.estimate:.3f} [{_fmt(iv.low)}, {_fmt(iv.high)}]"


def _columns(task: Task) -> tuple[tuple[str, str], ...]:
    return MULTILABEL_COLUMNS if task.kind == "multilabel" else MULTIPLE_CHOICE_COLUMNS


def _cost(rs: RunScores) -> str:
    """The run's cost: dollars, or "unknown" (no price: the run card's pricing note says how to add one)."""
    usd = rs.run.card.cost.usd
    return "unknown" if usd is None else f"${usd:.2f}"


def metrics_json(rs: RunScores) -> dict:
    card = rs.run.card
    scored = [s for s in rs.run.samples if not s.failed]
    latencies = np.array([s.latency_s for s in scored if s.latency_s is not None], dtype=float)
    statuses = {k: sum(1 for s in scored if s.parse_status == k)
                for k in ("ok", "mapped", "off_vocabulary", "unparseable")}
    off_vocab: dict[str, int] = {}
    for s in scored:
        for name in s.unknown_labels if s.parse_status == "off_vocabulary" else ():
            off_vocab[name] = off_vocab.get(name, 0) + 1
    errors: dict[str, int] = {}
    for s in rs.run.samples:
        if s.failed:
            key = (s.error or "").split(":")[0][:80]
            errors[key] = errors.get(key, 0) + 1
    return {
        "name": rs.name, "model": card.model, "run_dir": str(rs.run.path), "task": card.task,
        "task_version": card.task_version, "prompt_version": card.prompt_version,
        "benchmark": card.benchmark.model_dump(), "n_items": card.benchmark.n_items,
        "n_scored": len(rs.item_ids), "n_failed": rs.n_failed, "n_missing": rs.n_missing,
        "failure_policy": FAILURE_POLICY, "failure_reasons": errors, "parse_status": statuses,
        "off_vocabulary_names": dict(sorted(off_vocab.items(), key=lambda kv: -kv[1])),
        "identity": card.identity.model_dump() if card.identity else None,
        "figures": {k: v.to_dict() for k, v in rs.figures.items()},
        "per_label": [p.to_dict() for p in rs.per_label],
        "latency_s": {"median": float(np.median(latencies)) if latencies.size else None,
                      "p95": float(np.percentile(latencies, 95)) if latencies.size else None},
        "tokens": {"prompt": sum((s.tokens.prompt or 0) for s in scored if s.tokens),
                   "completion": sum((s.tokens.completion or 0) for s in scored if s.tokens)},
        "cost": card.cost.model_dump(), "parameters": card.parameters.model_dump(),
        "comparison_vs_first": {k: v.to_dict() for k, v in rs.comparison.items()},
        "torn_last_line_skipped": rs.run.torn_last_line,
        **rs.extra,  # issue 14: confusion matrix, circular view, context (eval.task_report)
    }


def report_csv(scores: list[RunScores]) -> str:
    """One row per run; figures at full precision (repr) so they can be checked exactly."""
    keys = [k for k, _ in _columns(scores[0].task)]
    header = ["model", "run_dir", "task", "n_items", "n_scored", "failures", "missing"]
    for k in keys:
        header += [k, f"{k}_low", f"{k}_high"]
    header += ["cost_usd", "prompt_tokens", "completion_tokens", "pricing", "identity"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for rs in scores:
        row = [rs.name, str(rs.run.path), rs.task.name, rs.run.card.benchmark.n_items, len(rs.item_ids),
               rs.n_failed, rs.n_missing]
        for k in keys:
            iv = rs.figures[k]
            row += [repr(iv.estimate), repr(iv.low), repr(iv.high)]
        cost = rs.run.card.cost
        identity = rs.run.card.identity
        row += ["" if cost.usd is None else repr(cost.usd), cost.prompt_tokens, cost.completion_tokens, cost.pricing,
                identity.key if identity else ""]
        writer.writerow(row)
    return buf.getvalue()


def report_markdown(scores: list[RunScores], warnings: list[str], n_resamples: int, seed: int) -> str:
    first, task = scores[0], scores[0].task
    card = first.run.card
    columns = _columns(task)
    n = len(first.item_ids)
    lines = [
        "# FractoVLM evaluation report", "",
        f"Task `{task.name}` ({card.task_version}), prompt `{card.prompt_version}`, benchmark "
        f"`{card.benchmark.name}` ({card.benchmark.n_items} images, hash `{card.benchmark.hash[:16]}…`), "
        f"image pixel budget {card.parameters.image_max_pixels}.", "",
    ]
    lines += [f"> **Warning:** {w}" for w in warnings] + ([""] if warnings else [])
    lines += [f"## Results (95 % bootstrap intervals: {n_resamples} resamples of the images, seed {seed})", ""]
    header = ["model", *[title for _, title in columns], "scored", "failures", "missing", "cost"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rs in scores:
        cells = [rs.name, *[_cell(rs.figures[k]) for k, _ in columns], str(len(rs.item_ids)),
                 f"**{rs.n_failed}**" if rs.n_failed else "0", str(rs.n_missing), _cost(rs)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *expert_lines(card.benchmark.expert)] if card.benchmark.expert else []  # beside the scores
    head_key = columns[0][0]
    half = first.figures[head_key].half_width
    lines += [
        "",
        f"Intervals are wide at this size: with n = 100 images a 95 % interval is about ±0.06 (here n = {n}, "
        f"{columns[0][1]} of {first.name}: ±{_fmt(half, 3)}). Differences smaller than that are not evidence "
        "on their own; the paired comparison below is the sharper test because it resamples the same images "
        "for both models.",
        "",
        f"Precision alone rewards saying little: read it with recall and F1. {FAILURE_POLICY}",
        "",
    ]
    failed = [rs for rs in scores if rs.n_failed or rs.n_missing]
    for rs in failed:
        lines.append(f"> **{rs.name}:** {rs.n_failed} failed request(s) and {rs.n_missing} image(s) never run "
                     f"are not in its figures (scored {len(rs.item_ids)} of {rs.run.card.benchmark.n_items}).")
    if failed:
        lines.append("")
    if len(scores) > 1:
        paired = MULTILABEL_PAIRED if task.kind == "multilabel" else MULTIPLE_CHOICE_PAIRED
        lines += [f"## Paired comparisons vs {first.name}", "",
                  "Difference (model − first) on the images scored in both, with a 95 % paired bootstrap "
                  "interval and the share of resamples in which the model is ahead.", ""]
        header = ["model", "images", *[f"Δ {t}" for _, t in paired], *[f"P(ahead) {t}" for _, t in paired]]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for rs in scores[1:]:
            c = rs.comparison
            k0 = paired[0][0]
            cells = [rs.name, str(c[k0].n_images),
                     *[f"{c[k].difference:+.3f} [{_fmt(c[k].low)}, {_fmt(c[k].high)}]" for k, _ in paired],
                     *[_fmt(c[k].share_a_better, 2) for k, _ in paired]]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    label_word = "feature" if task.kind == "multilabel" else "class"
    lines += [f"## Per-{label_word} F1", "",
              f"F1 per {label_word} (n/a: never predicted and never present); support = images in the scored "
              f"set of {first.name} that show it; rare features marked *.", ""]
    header = [label_word, "support", *[rs.name for rs in scores]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for j, label in enumerate(task.labels):
        mark = "*" if label in task.rare else ""
        cells = [f"{label}{mark}", str(first.per_label[j].support), *[_fmt(rs.per_label[j].f1, 2) for rs in scores]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *extra_markdown(scores)]  # issue 14: circular view, context levels, confusion matrices
    lines += ["## Runs", ""]
    for rs in scores:
        c = rs.run.card
        p = c.parameters
        statuses = metrics_json(rs)["parse_status"]
        lines.append(f"- **{rs.name}**: `{rs.run.path}`; backend {c.backend}"
                     + (f", endpoint {c.endpoint}" if c.endpoint else "")
                     + f"; model sent `{p.model}`, temperature {p.temperature}, max tokens {p.max_tokens}"
                     + (f", reasoning effort {p.reasoning_effort}" if p.reasoning_effort else "")
                     + f", structured output {'on' if p.structured_output else 'off'}; started {c.started_at}; "
                     f"parse status {statuses}; tokens {c.cost.prompt_tokens} in / {c.cost.completion_tokens} out; "
                     f"cost {_cost(rs)} ({c.cost.pricing or 'no pricing note'}); "
                     + (c.identity.describe() if c.identity else "no model identity recorded (an older run)"))
    lines += ["", "Plots: `per_feature_f1.png`, `headline_metrics.png`.", ""]
    bench = first.run.benchmark_card
    if bench is not None:
        lines.append(card_markdown(bench))
    else:
        counts = first.y_true.sum(0)
        lines += ["## Benchmark (class distribution of the scored images; no benchmark_card.json in the run dir)",
                  "", ", ".join(f"{label} {int(c)}" for label, c in zip(task.labels, counts) if c), ""]
    return "\n".join(lines) + "\n"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plots(scores: list[RunScores]) -> dict[str, bytes]:
    """PNG bytes: per-label F1 per model, and the headline figures with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task = scores[0].task
    labels = list(task.labels)
    width = 0.8 / len(scores)
    out: dict[str, bytes] = {}

    fig, ax = plt.subplots(figsize=(8, max(4.0, 0.32 * len(labels) * max(1, len(scores)) ** 0.5)))
    y = np.arange(len(labels))
    for i, rs in enumerate(scores):
        f1 = np.array([p.f1 for p in rs.per_label], dtype=float)
        ax.barh(y + i * width, np.nan_to_num(f1), height=width, label=rs.name)
    ax.set_yticks(y + width * (len(scores) - 1) / 2, [f"{x}{'*' if x in task.rare else ''}" for x in labels])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 (n/a drawn as 0)")
    ax.set_title(f"Per-{'feature' if task.kind == 'multilabel' else 'class'} F1 ({task.name}; * rare)")
    ax.legend(loc="lower right", fontsize="small")
    out["per_feature_f1.png"] = _png(fig)
    plt.close(fig)

    columns = _columns(task)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(columns)), 4))
    x = np.arange(len(columns))
    for i, rs in enumerate(scores):
        ivs = [rs.figures[k] for k, _ in columns]
        est = np.array([iv.estimate for iv in ivs], dtype=float)
        lo = np.nan_to_num(est - np.array([iv.low for iv in ivs], dtype=float))
        hi = np.nan_to_num(np.array([iv.high for iv in ivs], dtype=float) - est)
        ax.bar(x + i * width, np.nan_to_num(est), width=width, yerr=[lo, hi], capsize=3, label=rs.name)
    ax.set_xticks(x + width * (len(scores) - 1) / 2, [t for _, t in columns], rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("value (95 % bootstrap interval)")
    ax.set_title(f"Headline figures ({task.name}, n = {len(scores[0].item_ids)})")
    ax.legend(fontsize="small")
    out["headline_metrics.png"] = _png(fig)
    plt.close(fig)
    out.update(extra_plots(scores, _png))  # issue 14: confusion matrices, per-class recall
    return out


@dataclass(frozen=True)
class ReportFiles:
    out: Path
    markdown: Path
    csv: Path
    metrics: list[Path]
    plots: list[Path]


def build_report(run_dirs: list[Path], out: Path | None = None, n_resamples: int = DEFAULT_RESAMPLES,
                 seed: int = 0) -> ReportFiles:
    """Read, check, score and compare the runs; write every report file. Raises ReportError."""
    if not run_dirs:
        raise ReportError("no run directory given")
    try:
        runs = [read_run(Path(d)) for d in run_dirs]
    except RunFormatError as exc:
        raise ReportError(str(exc)) from None
    warnings = check_comparable(runs)
    warnings += [f"{r.path}: a torn last line of samples.jsonl was skipped (killed run; resume it)"
                 for r in runs if r.torn_last_line]
    scores = [score_run(run, name, n_resamples, seed) for run, name in zip(runs, _names(runs))]
    for rs in scores[1:]:
        rs.comparison = compare(rs, scores[0], n_resamples, seed)
    for rs in scores:
        rs.extra = extra_metrics(rs, n_resamples, seed)
    out = Path(out) if out is not None else Path(run_dirs[0]).parent / "report"
    out.mkdir(parents=True, exist_ok=True)
    md, csv_path = out / "report.md", out / "report.csv"
    write_text_atomic(md, report_markdown(scores, warnings, n_resamples, seed))
    write_text_atomic(csv_path, report_csv(scores))
    metric_paths: list[Path] = []
    for i, rs in enumerate(scores):
        path = out / f"metrics_{rs.slug}.json"
        if path in metric_paths:  # the same model name twice (e.g. one run dir listed twice)
            path = out / f"metrics_{rs.slug}_{i}.json"
        write_json_atomic(path, metrics_json(rs))
        metric_paths.append(path)
    plot_paths = []
    for name, data in plots(scores).items():
        write_bytes_atomic(out / name, data)
        plot_paths.append(out / name)
    return ReportFiles(out, md, csv_path, metric_paths, plot_paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="run directories written by eval.run; the first is the reference of the comparisons")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: <parent of the first RUN_DIR>/report)")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                        help=f"bootstrap resamples (default {DEFAULT_RESAMPLES}; at least 1000 recommended)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    args = parser.parse_args(argv)
    if args.resamples < 1000:
        parser.error("--resamples must be at least 1000 (the percentile interval is unstable below that)")
    try:
        files = build_report(args.run_dirs, args.out, args.resamples, args.seed)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {files.markdown} ({len(args.run_dirs)} run(s)); csv {files.csv.name}, "
          f"{len(files.metrics)} metrics file(s), plots {', '.join(p.name for p in files.plots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
