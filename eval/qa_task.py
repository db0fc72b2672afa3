"""The sem_qa task: a model answers free-text questions about benchmark images; an LLM judge scores the answers.

Usage: python -m eval.run --task sem_qa --model vllm:fracto-32b --judge openai:gpt-5.2 --benchmark output/fracto/dataset

(or python -m eval.qa_task with the same flags). The benchmark is the Q&A test split the builder writes
with --qa (<dataset>/<name>_qa_test_meta.jsonl beside images/; or that meta file itself): per sample the
image, the fixed question, the reference answer (possibly a refusal), the evidence sentences and the
reference features. Each image + question goes to --model (temperature 0, no schema, the image at the
benchmark's pixel budget, as in training); each reply goes with the reference and evidence to --judge
(eval.judge: pinned model name, JUDGE_PROMPT_VERSION, temperature 0 and --judge-max-tokens unless given;
all recorded in the run card). The first --reask samples (by sample id; fewer when one of them has no
model reply) are judged a second time under a separate cache identity, for the judge's self-agreement.

Run directory (--out, default output/eval/sem_qa/<model>): run_card.json (model, judge, parameters,
prompt versions, benchmark hash, counts, time), samples.jsonl (one QASample per sample: reply, judgement
and raw judge text, re-ask; appended and flushed as each sample is finished), metrics.json
(eval.qa_metrics.aggregate) and report.md. Model identity as in eval.run (eval.identity): before anything
is sent, the run records what the model's and the judge's servers serve (and the weights fingerprint from
serve.sh's endpoint file); both are in the run card and in every cache key of their requests, and a run
folder made by another identity is refused, naming both. Every reply (model and judge) of a
deterministic request is committed to response_cache.sqlite as it arrives, so a killed or partly failed
run is resumed by running the same command: finished samples are kept and skipped, cached replies
reused, failures (no model reply, a judgement that failed the strict parse) asked again. Judge replies
that fail the strict parse are never cached. A run directory holding another model/judge/benchmark/
parameters is refused (use --out or --no-resume). Exit code: 0 all judged, 1 some failures, 2 setup.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from eval.judge import JUDGE_PROMPT_VERSION, SCHEMA_NAME, Judgement, judge_json_schema, judge_prompt, parse_judgement
from eval.calls import gather
from eval.cli import check_minimums
from eval.identity import combined_identity
from eval.models import ModelError, resolve_model
from eval.plan import RunError, folder_pixel_budget, identify
from eval.records import SAMPLES_FILE, ModelIdentity, SampleLog, read_latest
from eval.resume import check_identity
from eval.qa_metrics import aggregate
from fracto_core.files import text_lines, write_json_atomic, write_text_atomic
from fracto_core.image_budget import IMAGE_MIN_PIXELS
from fracto_core.vlm_api.backends import GenerationParams, ProviderError
from fracto_core.vlm_api.cache import ResponseCache
from fracto_core.vlm_api.client import CallResult, ClientOptions, RunSummary, run_requests
from fracto_core.vlm_api.payloads import ImageInput, build_request

TASK = "sem_qa"
TASK_VERSION = "sem_qa-1"
REASK_SUFFIX = "#reask"


class QAError(ValueError):
    """A run that cannot start; the message says what to fix."""


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JudgeRecord(Record):
    status: str  # ok | malformed | refused | failed
    quality: int | None = None
    feature_identification: int | None = None
    rationale: str = ""
    detail: str = ""
    raw: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class QASample(Record):
    sample_id: str
    item_id: str
    kind: str
    question: str
    reference: str
    reference_refused: bool
    reference_features: list[str]
    evidence: list[str]
    model_reply: str | None = None
    model_error: str | None = None  # set <=> no model reply (then no judgement)
    judge: JudgeRecord | None = None
    reask: JudgeRecord | None = None


class QABenchItem(Record):
    sample_id: str
    item_id: str
    image: str
    kind: str
    question: str
    answer: str
    refused: bool
    sources: list[str]
    features: list[str] = Field(default_factory=list)
    item_features: list[str] = Field(default_factory=list)


def load_qa_benchmark(path: Path) -> tuple[Path, list[QABenchItem], str]:
    """(image root, items sorted by sample id, hash) of a Q&A test split; QAError naming the file on bad input."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*_qa_test_meta.jsonl")) or sorted(path.glob("dataset/*_qa_test_meta.jsonl"))
        if not found:
            raise QAError(f"{path}: no *_qa_test_meta.jsonl: build the dataset with `python -m dataset_builders.build "
                          "--qa` (or pass the meta file)")
        path = found[0]
    if not path.is_file():
        raise QAError(f"{path}: no such Q&A benchmark file")
    items: list[QABenchItem] = []
    for n, line in enumerate(text_lines(path.read_text(encoding="utf-8")), 1):  # not splitlines: U+2028 in text
        if line.strip():
            try:
                meta = json.loads(line)
                items.append(QABenchItem(**{k: meta[k] for k in QABenchItem.model_fields if k in meta}))
            except (ValueError, TypeError) as exc:
                raise QAError(f"{path}:{n}: not a Q&A meta line: {str(exc).splitlines()[0]}") from None
    if not items:
        raise QAError(f"{path}: no samples")
    items.sort(key=lambda i: i.sample_id)
    digest = hashlib.sha256()
    for it in items:
        digest.update(json.dumps([it.sample_id, it.question, it.answer, it.sources], ensure_ascii=False).encode())
    return path.parent, items, digest.hexdigest()


def _judge_record(result: CallResult | None) -> JudgeRecord:
    if result is None or result.status in ("failed", "not_run") or result.text is None:
        return JudgeRecord(status="failed", detail=(result.error if result else "not asked"))
    verdict: Judgement = parse_judgement(result.text)
    return JudgeRecord(status=verdict.status, quality=verdict.quality,
                       feature_identification=verdict.feature_identification, rationale=verdict.rationale,
                       detail=verdict.detail, raw=result.text, cached=result.cached)


def _base(it: QABenchItem) -> dict:
    return dict(sample_id=it.sample_id, item_id=it.item_id, kind=it.kind, question=it.question, reference=it.answer,
                reference_refused=it.refused, reference_features=it.item_features, evidence=it.sources)


def _complete(s: QASample, reask_ids: set[str]) -> bool:
    """Done for a resumed run: a model reply, a valid judgement, and the re-ask's where one is due."""
    return (s.model_reply is not None and s.judge is not None and s.judge.ok
            and (s.sample_id not in reask_ids or (s.reask is not None and s.reask.ok)))


def run_sem_qa(args: argparse.Namespace) -> tuple[Path, dict, dict]:
    """Run (or resume) one model + judge on the Q&A benchmark; (run dir, run card, metrics). Raises QAError."""
    bench = args.benchmark or Path("output/sample_build/dataset")
    root, items, bench_hash = load_qa_benchmark(bench)
    items = items[: args.limit] if args.limit else items
    if not args.judge:
        raise QAError("--task sem_qa needs --judge <model> (e.g. openai:gpt-5.2, or a served name with "
                      "--judge-base-url)")
    try:
        spec = resolve_model(args.model, args.base_url, args.endpoint_file)
        judge_spec = resolve_model(args.judge, args.judge_base_url)
        endpoint, judge_endpoint = spec.endpoint(), judge_spec.endpoint()
        endpoint.check_ready()
        judge_endpoint.check_ready()
    except (ModelError, ProviderError) as exc:
        raise QAError(str(exc)) from None
    max_pixels, min_pixels, _ = folder_pixel_budget(root, args.image_max_pixels)
    run_dir = Path(args.out or Path("output/eval") / TASK / spec.name.replace(":", "_").replace("/", "_"))
    params = GenerationParams(max_output_tokens=args.max_tokens or 512, temperature=args.temperature or 0.0,
                              reasoning_effort=args.reasoning_effort, seed=args.seed)
    judge_params = GenerationParams(max_output_tokens=args.judge_max_tokens, temperature=args.judge_temperature,
                                    reasoning_effort=args.judge_reasoning_effort, seed=args.seed)
    settings = {"task_version": TASK_VERSION, "model": spec.name, "judge": judge_spec.name,
                "judge_prompt_version": JUDGE_PROMPT_VERSION, "benchmark_hash": bench_hash,
                "judge_parameters": judge_endpoint.generation_kwargs(judge_params),
                "parameters": endpoint.generation_kwargs(params), "image_max_pixels": max_pixels}
    if min_pixels != IMAGE_MIN_PIXELS:  # (only then: runs made before it was read keep their settings)
        settings["image_min_pixels"] = min_pixels
    warnings: list[str] = []
    try:  # what each server serves, before anything is sent (eval.identity, as in eval.run)
        parts = {"model": identify(spec, endpoint, False, warnings)[0],
                 "judge": identify(judge_spec, judge_endpoint, False, warnings)[0]}
    except RunError as exc:
        raise QAError(str(exc)) from None
    identity = combined_identity(parts)
    card_path = run_dir / "run_card.json"
    if card_path.exists() and args.resume:
        old = json.loads(card_path.read_text(encoding="utf-8"))
        changed = [k for k in settings if old.get("settings", {}).get(k) != settings[k]]
        if changed:
            raise QAError(f"{run_dir} holds another run (different {', '.join(changed)}); use another --out, or "
                          "--no-resume to start over in it")
        try:
            check_identity(run_dir, ModelIdentity.model_validate(old["identity"]) if old.get("identity") else None,
                           identity)
        except RunError as exc:
            raise QAError(str(exc)) from None
    run_dir.mkdir(parents=True, exist_ok=True)
    cache_file = run_dir / "response_cache.sqlite"
    samples_file = run_dir / SAMPLES_FILE
    if not args.resume:
        cache_file.unlink(missing_ok=True)
    reask_ids = {it.sample_id for it in items[: args.reask]}  # by sample id, whatever the replies: resume-stable
    done = {}
    if args.resume and samples_file.exists():
        done = {s.sample_id: s for s in read_latest(samples_file, QASample, "sample_id")[0] if _complete(s, reask_ids)}
    card = {"task": TASK, "settings": settings, "identity": json.loads(identity.model_dump_json()),
            "model": spec.name, "model_endpoint": spec.public_url(),
            "judge": {"model": judge_spec.name, "model_sent": judge_endpoint.model,
                      "endpoint": judge_spec.public_url(), "prompt_version": JUDGE_PROMPT_VERSION,
                      "sampling": settings["judge_parameters"]},
            "benchmark": {"path": str(bench), "hash": bench_hash, "n_items": len(items)},
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "warnings": warnings}
    write_json_atomic(card_path, card)  # before anything is sent: a killed run's folder is checked on resume
    options = ClientOptions(concurrency=args.concurrency, timeout_s=args.timeout, max_attempts=args.max_attempts,
                            backoff_base_s=args.backoff_base_s, progress=not args.quiet)
    by_id = {it.sample_id: it for it in items}
    model_requests, unreadable = [], {}
    for it in items:
        if it.sample_id in done:
            continue
        try:
            image = ImageInput.from_path(root / it.image, max_pixels, min_pixels)
        except OSError as exc:
            unreadable[it.sample_id] = f"image unreadable: {exc}"
            continue
        model_requests.append(build_request(it.sample_id, endpoint, [image, it.question], params, TASK_VERSION,
                                            identity=parts["model"].key))
    with ResponseCache(cache_file) as cache, SampleLog(samples_file, fresh=not args.resume) as log:
        for sid, error in unreadable.items():
            log.write(QASample(**_base(by_id[sid]), model_error=error))

        def model_done(r: CallResult) -> None:  # a sample without a model reply is finished (a failure)
            if r.status not in ("ok", "invalid") or r.text is None:
                log.write(QASample(**_base(by_id[r.request_id]), model_error=r.error or f"no reply ({r.status})"))

        replies, model_summary = run_requests(endpoint, model_requests, options, cache=cache, on_result=model_done)
        answered = {r.request_id: r for r in replies if r.status in ("ok", "invalid") and r.text is not None}
        judge_requests, groups = [], {}
        for sid in sorted(answered):
            it = by_id[sid]
            system, text = judge_prompt(it.question, it.answer, it.sources, it.item_features, answered[sid].text,
                                        it.refused)
            schema = (SCHEMA_NAME, judge_json_schema())
            groups[sid] = [sid] + ([sid + REASK_SUFFIX] if sid in reask_ids else [])
            for rid in groups[sid]:
                judge_requests.append(build_request(rid, judge_endpoint, [text], judge_params, JUDGE_PROMPT_VERSION
                                                    + rid.removeprefix(sid), system=system, schema=schema,
                                                    identity=parts["judge"].key))

        def judged(sid: str, verdicts: dict[str, CallResult]) -> None:
            reask = verdicts.get(sid + REASK_SUFFIX)
            log.write(QASample(**_base(by_id[sid]), model_reply=answered[sid].text,
                               judge=_judge_record(verdicts[sid]), reask=_judge_record(reask) if reask else None))

        # first judgements, then the re-asks: a re-ask is a second question, sent after the first one answered
        on_result = gather(groups, judged)
        first = [r for r in judge_requests if not r.request_id.endswith(REASK_SUFFIX)]
        again = [r for r in judge_requests if r.request_id.endswith(REASK_SUFFIX)]
        judge_summary = RunSummary()
        for batch in (first, again):
            _, summary = run_requests(judge_endpoint, batch, options, cache=cache,
                                      validate=lambda t: None if parse_judgement(t).ok else "judgement "
                                      + parse_judgement(t).status, on_result=on_result)
            judge_summary = judge_summary.plus(summary)
    latest = {s.sample_id: s for s in read_latest(samples_file, QASample, "sample_id")[0]}
    samples = [latest[it.sample_id] for it in items if it.sample_id in latest]
    metrics = aggregate(samples)
    write_json_atomic(run_dir / "metrics.json", metrics)
    card["judge"]["reasked"] = sum(s.reask is not None for s in samples)
    card.update({"finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "already_done": len(done),
                 "requests": {"model": model_summary.line(), "judge": judge_summary.line()},
                 "counts": {k: metrics[k] for k in ("n_samples", "n_model_failed", "n_scored", "judge_status")}})
    write_json_atomic(card_path, card)
    write_text_atomic(run_dir / "report.md", report_markdown(card, metrics))
    return run_dir, card, metrics


def _fmt(ci: dict, digits: int = 1) -> str:
    if ci["mean"] is None:
        return "n/a (nothing scored)"
    return f"{ci['mean']:.{digits}f} [95% CI {ci['low']:.{digits}f}, {ci['high']:.{digits}f}] (n={ci['n']})"


def report_markdown(card: dict, m: dict) -> str:
    js, sa, ex = m["judge_status"], m["self_agreement"], m["exact_match_agreement"]
    lines = [f"# sem_qa: {card['model']} judged by {card['judge']['model']}", "",
             f"Judge prompt {card['judge']['prompt_version']}, sampling {card['judge']['sampling']}; benchmark "
             f"{card['benchmark']['path']} ({card['benchmark']['n_items']} questions, hash "
             f"{card['benchmark']['hash'][:12]}).", "",
             f"- quality (0-100): {_fmt(m['quality'])}",
             f"- feature identification (1-4): {_fmt(m['feature_identification'], 2)}",
             f"- on the features questions: quality {_fmt(m['quality_features_questions'])}; identification "
             f"{_fmt(m['feature_identification_features_questions'], 2)}",
             f"- quality by kind: {m['quality_by_kind']}",
             f"- failures (not scored): {m['n_model_failed']} without a model reply; judge malformed {js['malformed']}, "
             f"refused {js['refused']}, no reply {js['failed']}",
             f"- judge self-agreement on {sa['n_reasked']} re-asked ({sa['n_both_ok']} both ok): mean |Δquality| "
             f"{sa['mean_abs_quality_diff']}, within 10 points {sa['quality_within_10']}, identical identification "
             f"{sa['feature_identification_equal']}",
             f"- judge vs exact-match features ({ex['n']} features questions): exact-set share "
             f"{ex['exact_set_share']}, mean F1 {ex['mean_f1']}, judge>=3 agrees with exact {ex['judge_ge3_equals_exact']}"
             f", Spearman(judge, F1) {ex['spearman_judge_vs_f1']}"]
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m eval.run --task sem_qa", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default=TASK, choices=[TASK])
    ap.add_argument("--model", required=True, help="the answering model (forms as eval.run --model)")
    ap.add_argument("--judge", required=True, help="the judge model: openai:<model>, gemini:<model>, vllm:<name>")
    ap.add_argument("--judge-base-url", default=None, help="OpenAI-compatible server of the judge")
    ap.add_argument("--judge-temperature", type=float, default=0.0, help="judge sampling temperature (default 0)")
    ap.add_argument("--judge-max-tokens", type=int, default=1024, help="judge max output tokens (default 1024)")
    ap.add_argument("--judge-reasoning-effort", default=None, help="reasoning judges only")
    ap.add_argument("--reask", type=int, default=20, help="judge the first N samples twice (self-agreement)")
    ap.add_argument("--benchmark", type=Path, default=None, help="dataset folder built with --qa, or the "
                                                                 "*_qa_test_meta.jsonl (default output/sample_build/dataset)")
    ap.add_argument("--out", type=Path, default=None, help="run directory (default output/eval/sem_qa/<model>)")
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--endpoint-file", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--max-attempts", type=int, default=5)
    ap.add_argument("--backoff-base-s", type=float, default=1.0, help=argparse.SUPPRESS)
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--max-tokens", type=int, default=None, help="model max output tokens (default 512)")
    ap.add_argument("--reasoning-effort", default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--image-max-pixels", type=int, default=None)
    ap.add_argument("--no-resume", dest="resume", action="store_false", default=True)
    ap.add_argument("--quiet", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    check_minimums(ap, (("--limit", args.limit, 1), ("--concurrency", args.concurrency, 1),  # as eval.run's
                        ("--max-attempts", args.max_attempts, 1), ("--max-tokens", args.max_tokens, 1),
                        ("--judge-max-tokens", args.judge_max_tokens, 1), ("--reask", args.reask, 0),
                        ("--image-max-pixels", args.image_max_pixels, 1024)))
    try:
        run_dir, card, metrics = run_sem_qa(args)
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report_markdown(card, metrics), end="")
    print(f"run dir: {run_dir}")
    failures = metrics["n_model_failed"] + metrics["n_judged"] - metrics["n_scored"]
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
