"""Nothing lost when killed: a multi-call run (circular multiple choice) and a judged sem_qa run are SIGKILLed in a
subprocess while a scripted server hangs after N replies; running the same command again sends only the missing
requests and ends with the same samples and metrics as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from eval.records import read_run
from eval.run import RunConfig, run_eval
from eval.run import main as eval_main
from eval.tasks import get_task

from support import Reply, ScriptedServer
from support.eval_classes import make_class_benchmark
from test_sem_qa import qa_benchmark

ROOT = Path(__file__).resolve().parents[1]


class Hanging:
    """A responder that answers with `answer(body, key)` and, while armed, hangs every request after the first N."""

    def __init__(self, answer, after: int):
        self.answer, self.after, self.armed, self.seen = answer, after, True, 0
        self.lock = threading.Lock()

    def __call__(self, body, key, n):
        with self.lock:
            self.seen += 1
            hang = self.armed and self.seen > self.after
        return Reply(content=None, delay_s=60) if hang else self.answer(body, key)


def run_until_hung(args: list[str], server: ScriptedServer, n_requests: int, log: Path, timeout_s: float = 90):
    """Start `python -m eval.run ARGS`, wait until the server got n_requests (the last one hangs), SIGKILL it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "eval.run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        deadline = time.monotonic() + timeout_s
        while server.count() < n_requests:
            assert proc.poll() is None, f"eval.run ended early: {log.read_text()}"
            assert time.monotonic() < deadline, f"no request {n_requests} within {timeout_s}s: {log.read_text()}"
            time.sleep(0.05)
        time.sleep(0.3)  # the hung request is in flight; everything before it is answered and written
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_killed_circular_run_resumes_to_the_uninterrupted_result(tmp_path):
    rows = [{"item_id": f"i{n}", "technique": "SEM"} for n in range(3)]
    csv_path = make_class_benchmark(tmp_path / "bench", rows)
    k = len(get_task("microscopy_technique").choices)  # rotations per sample
    total, after = 3 * k, k + 2  # killed while the second sample waits for its 3rd rotation
    biased = Hanging(lambda body, key: Reply(content="The answer is B"), after)

    def cfg(out: Path, base_url: str) -> RunConfig:
        return RunConfig(model="scripted-vlm", task="microscopy_technique", benchmark=csv_path, out=out,
                         base_url=base_url, concurrency=1, timeout_s=90, max_attempts=1, progress=False,
                         report=False)

    with ScriptedServer(responder=lambda body, key, n: Reply(content="The answer is B")) as clean:
        whole = run_eval(cfg(tmp_path / "whole", clean.base_url))
        assert clean.count() == total
    with ScriptedServer(responder=biased) as server:
        run_until_hung(["--model", "scripted-vlm", "--task", "microscopy_technique", "--benchmark", str(csv_path),
                        "--out", str(tmp_path / "run"), "--base-url", server.base_url, "--concurrency", "1",
                        "--max-attempts", "1", "--timeout", "90", "--quiet", "--no-report"],
                       server, after + 1, tmp_path / "killed.log")
        kept = (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
        assert [json.loads(line)["item_id"] for line in kept] == ["i0"]  # the finished sample is on disk
        biased.armed = False
        before = server.count()
        resumed = run_eval(cfg(tmp_path / "run", server.base_url))
        assert resumed.already_done == 1 and server.count() - before == total - after  # only the missing ones
    a, b = read_run(whole.run_dir), read_run(resumed.run_dir)

    def view(run):
        return {s.item_id: (s.parsed, s.scores, s.circular_correct, [(c.order, c.raw_reply, c.correct)
                                                                      for c in s.calls]) for s in run.samples}
    assert view(a) == view(b) and len(view(b)) == 3
    assert a.card.protocol["circular_summary"] == b.card.protocol["circular_summary"]
    assert b.card.identity.key == a.card.identity.key and b.card.n_samples == 3 and b.card.n_failed == 0


QUESTIONS = ["s1", "s2", "s3", "s4", "s5", "s6"]
VERDICTS = {sid: (40 + 10 * n, 1 + n % 4) for n, sid in enumerate(QUESTIONS)}


def test_killed_sem_qa_run_resumes_to_the_uninterrupted_result(tmp_path):
    bench = qa_benchmark(tmp_path / "bench")

    def answer(body, key):
        return Reply(content=f"Answer to {key}: fatigue striations.")

    def verdict(body, key):
        quality, ident = VERDICTS[key]
        return Reply(content=json.dumps({"quality": quality, "feature_identification": ident, "rationale": key}))

    def args(model: ScriptedServer, judge: ScriptedServer, out: Path) -> list[str]:
        return ["--task", "sem_qa", "--model", "vllm:tiny", "--base-url", model.base_url, "--judge",
                "vllm:judge-model", "--judge-base-url", judge.base_url, "--benchmark", str(bench), "--out", str(out),
                "--reask", "2", "--concurrency", "1", "--max-attempts", "1", "--timeout", "90", "--quiet"]

    # first judgements s1..s6, then the re-asks of s1, s2: killed while s4's judgement hangs, so s1..s3 are
    # judged and only s3 (no re-ask due) is finished; s1 and s2 still wait for their re-asks
    total_judge, after = 6 + 2, 3
    with ScriptedServer(responder=lambda b, k, n: answer(b, k)) as model, \
            ScriptedServer(responder=lambda b, k, n: verdict(b, k)) as judge:
        assert eval_main(args(model, judge, tmp_path / "whole")) == 0
        assert (model.count(), judge.count()) == (6, total_judge)
    hanging = Hanging(verdict, after)
    with ScriptedServer(responder=lambda b, k, n: answer(b, k)) as model, ScriptedServer(responder=hanging) as judge:
        run_until_hung(args(model, judge, tmp_path / "run"), judge, after + 1, tmp_path / "killed.log")
        kept = (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
        assert [json.loads(line)["sample_id"] for line in kept] == ["s3"]
        assert model.count() == 6
        hanging.armed = False
        before = judge.count()
        assert eval_main(args(model, judge, tmp_path / "run")) == 0
        assert model.count() == 6  # every model reply came from the cache
        assert judge.count() - before == total_judge - after  # only the missing judgements
    whole, run = tmp_path / "whole", tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text()) == json.loads((whole / "metrics.json").read_text())

    def samples(folder: Path) -> dict:
        out = {}
        for line in (folder / "samples.jsonl").read_text().splitlines():
            s = json.loads(line)
            for j in ("judge", "reask"):
                if s[j]:
                    s[j].pop("cached")
            out[s["sample_id"]] = s
        return out
    assert samples(run) == samples(whole) and len(samples(run)) == 6
    card = json.loads((run / "run_card.json").read_text())
    assert card["already_done"] == 1 and card["counts"]["n_scored"] == 6 and card["judge"]["reasked"] == 2
