"""The command line of eval.run: its flags (parser), the RunConfig they make, and the summary printed at the end.

Reads nothing and writes nothing itself (eval.run runs; this module only speaks to the user).

Usage: python -m eval.run --help
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from fracto_core.image_budget import IMAGE_MAX_PIXELS
from eval.plan import DEFAULT_BENCHMARK, REASONING_MAX_TOKENS, RunConfig, RunOutcome
from eval.tasks import JUDGED_TASKS, task_names


def summary_lines(outcome: RunOutcome) -> list[str]:
    card = outcome.card
    lines = []
    if outcome.summary is not None:
        note = (f" ('invalid' = {outcome.summary.invalid} reply/replies empty or cut at --max-tokens: parsed and "
                "scored as given, not failures)") if outcome.summary.invalid else ""
        lines.append(f"requests this run: {outcome.summary.line()}{note}")
    scored = card.n_samples - card.n_failed
    rate = f" ({outcome.n_unparseable / scored:.1%} of replies)" if scored else ""
    lines.append(f"samples: {card.n_samples} of {outcome.n_items} ({outcome.already_done} from an earlier run); "
                 f"failures: {card.n_failed}; parse failures: {outcome.n_unparseable}{rate}; replies naming "
                 f"features outside the vocabulary: {outcome.n_off_vocabulary}")
    if outcome.headline:
        h = outcome.headline
        if h["estimate"] is None or math.isnan(h["estimate"]):
            figure = "n/a (no reply named a feature: precision is undefined)"
        else:
            figure = f"{h['estimate']:.3f} [95% CI {h['low']:.3f}, {h['high']:.3f}]"
        lines.append(f"{h['name']}: {figure} on {h['n_scored']} scored images; parse failures "
                     f"{outcome.n_unparseable} (strict precision counts each as a wrong answer: "
                     f"{_fmt(h.get('strict'))})")
    if card.identity is not None:
        lines.append(f"model: {card.identity.describe()}")
    cost = "unknown" if card.cost.usd is None else f"${card.cost.usd:.4f}"
    lines.append(f"tokens: {card.cost.prompt_tokens:,} in / {card.cost.completion_tokens:,} out; cost {cost} "
                 f"({card.cost.pricing})")
    lines.append(f"run dir: {outcome.run_dir}")
    if outcome.report_md is not None:
        lines.append(f"report: {outcome.report_md}")
    elif outcome.report_error:
        lines.append(f"no report: {outcome.report_error}")
    if card.n_failed:
        lines.append(f"{card.n_failed} image(s) got no reply (see 'error' in samples.jsonl): run the same command "
                     "again to retry only those")
    return lines


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.3f}"


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m eval.run", description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True,
                    help="openai:<model> | gemini:<model> | vllm:<served name> | <served name> (see eval/models.py) | "
                         "hybrid:<specialist>+<reasoner> (eval/mechanism.py) | clip:<arch>/<weights> "
                         "(eval/clip_baseline.py)")
    ap.add_argument("--task", default="fracture_morphology", choices=[*task_names(), *JUDGED_TASKS],
                    help="what the model is asked (default fracture_morphology: the training prompt and answer); "
                         "sem_qa: free-text questions scored by --judge (see python -m eval.qa_task --help)")
    ap.add_argument("--benchmark", type=Path, default=None,
                    help=f"a dataset folder (the builder's test split) or a labels CSV beside its images "
                         f"(default {DEFAULT_BENCHMARK})")
    ap.add_argument("--out", type=Path, default=None,
                    help="run directory (default output/eval/<task>/<model>); re-running resumes it")
    ap.add_argument("--base-url", default=None,
                    help="OpenAI-compatible server, e.g. http://gpu01:8000/v1 (also overrides openai:/gemini: URLs)")
    ap.add_argument("--endpoint-file", type=Path, default=None,
                    help="endpoint JSON written by slurm/serve.sh (default for served names without --base-url: "
                         "$ENDPOINT_DIR/<name>.json, ENDPOINT_DIR default output/endpoints)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N benchmark images")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per attempt (default 120)")
    ap.add_argument("--max-attempts", type=int, default=5,
                    help="attempts per request on 429/5xx/timeouts before it is recorded as failed (default 5)")
    ap.add_argument("--temperature", type=float, default=None,
                    help="sampling temperature (default 0; not sent to reasoning models)")
    ap.add_argument("--max-tokens", type=int, default=None,
                    help=f"max output tokens (default: the task's, 512; reasoning models {REASONING_MAX_TOKENS}, "
                         "sent as max_completion_tokens)")
    ap.add_argument("--reasoning-effort", default=None,
                    help="reasoning models only (e.g. none|minimal|low|medium|high); default: the model's own")
    ap.add_argument("--seed", type=int, default=None,
                    help="sampling seed sent with each request (best effort); also the option order of multiple "
                         "choice and the initialisation of clip:<arch>/random (default 0 for both)")
    ap.add_argument("--image-max-pixels", type=int, default=None,
                    help=f"pixel budget per image (default: the benchmark's dataset_card.json image_max_pixels, "
                         f"else {IMAGE_MAX_PIXELS}); keep it equal for every model you compare")
    ap.add_argument("--no-structured-output", dest="structured_output", action="store_false",
                    help="do not send a JSON-schema response_format (replies are parsed leniently either way)")
    ap.add_argument("--resume", dest="resume", action="store_true", default=True,
                    help="continue the run in --out: only images without a reply are sent (default)")
    ap.add_argument("--no-resume", dest="resume", action="store_false",
                    help="start over: samples.jsonl is replaced and the response cache is not used (also the "
                         "way on when the folder holds replies of another model identity)")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the requests, estimated input tokens and cost; send nothing, write nothing")
    ap.add_argument("--no-report", dest="report", action="store_false", help="skip the single-model report")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--context", default="none", choices=("none", "caption", "caption+excerpts"),
                    help="what the model is told besides the image (eval/context.py); one run per level")
    ap.add_argument("--no-circular", dest="circular", action="store_false",
                    help="multiple choice: ask once in the task's order instead of every rotation (eval/circular.py)")
    return ap


def check_minimums(ap: argparse.ArgumentParser, checks) -> None:
    """ap.error (exit 2) naming the first (flag, value, lowest allowed) whose value, when given, is below it."""
    for flag, value, low in checks:
        if value is not None and value < low:
            ap.error(f"{flag} must be at least {low}")


def config_from_args(ap: argparse.ArgumentParser, argv: list[str] | None) -> RunConfig:
    """Parse and check the flags (argparse exits 2 on a bad one) into a RunConfig."""
    args = ap.parse_args(argv)
    check_minimums(ap, (("--limit", args.limit, 1), ("--concurrency", args.concurrency, 1),
                        ("--max-attempts", args.max_attempts, 1), ("--max-tokens", args.max_tokens, 1),
                        ("--image-max-pixels", args.image_max_pixels, 1024)))
    return RunConfig(model=args.model, task=args.task, benchmark=args.benchmark, out=args.out,
                     base_url=args.base_url, endpoint_file=args.endpoint_file, limit=args.limit,
                     concurrency=args.concurrency, timeout_s=args.timeout, max_attempts=args.max_attempts,
                     temperature=args.temperature, max_tokens=args.max_tokens,
                     reasoning_effort=args.reasoning_effort, seed=args.seed,
                     image_max_pixels=args.image_max_pixels, structured_output=args.structured_output,
                     resume=args.resume, dry_run=args.dry_run, progress=not args.quiet, report=args.report,
                     context=args.context, circular=args.circular)


def judged_task_module(argv: list[str]) -> str | None:
    """The module that runs --task when it is a judged free-text task (JUDGED_TASKS), else None."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    return JUDGED_TASKS.get(pre.parse_known_args(argv)[0].task)
