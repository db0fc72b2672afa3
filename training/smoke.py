"""CPU smoke run of the whole pipeline: build -> tiny model -> train -> merge -> serve -> ask.

Usage:
    python -m training.smoke                          # everything under output/, ~1.5 min on 2 cores
    python -m training.smoke --work /tmp/smoke --requests 5
    python -m training.smoke --dataset output/sample_build/dataset --model output/tiny-qwen3vl   # reuse both

For a newcomer: one command that shows every piece working on a laptop without a GPU, with the real tools
(`python -m dataset_builders.build`, `llamafactory-cli train / export / api`, the `openai` SDK). The model is
the tiny *random* Qwen3-VL, so its replies are noise, or after a few steps the answer format with arbitrary
labels ("unparseable" or "ok" with wrong features); that is expected. The run proves the plumbing, not the
model.

Layout under WORK (default `output`, so the paths are the tiny recipes' defaults and, after one smoke run,
`llamafactory-cli train llamafactory_configs/tiny/lora_sft_cpu.yaml` works without overrides):
    WORK/sample_build/dataset     the builder's dataset (sample corpus, default settings)
    WORK/tiny-qwen3vl             the tiny model
    WORK/tiny_runs/lora_sft_cpu   the LoRA adapter          WORK/tiny_runs/merged   the merged model
    WORK/tiny_runs/smoke          logs/ (one per step), replies.jsonl (image, reply, parse status)

Each step runs as a subprocess with its own log and prints one line with its wall time; a failing step
stops the run, prints the end of its log and the log's path.

Before spending GPU time on a real recipe, check it with LlamaFactory's own parser (no model is loaded):
    python -m training.recipe_check llamafactory_configs/qwen3vl_32b/lora_sft_zero3.yaml --set bf16=false

The pieces (environment, free port, the API server with reliable shutdown, image data URLs, one request)
are importable: tests/test_training_cpu.py drives the same code.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from training.recipes import RECIPES_ROOT

REPO = RECIPES_ROOT.parent
TINY_RECIPES = RECIPES_ROOT / "tiny"
DEFAULT_WORK = Path("output")
MODEL_NAME = "fracto-tiny"  # API_MODEL_NAME of the smoke server
REPLY_MAX_TOKENS = 32  # a reply in the answer format is ~10-40 tokens; the random model never stops early


class StepFailed(RuntimeError):
    """A pipeline step failed; the message names the step and its log."""


# --- environment and processes ------------------------------------------------------------------

def venv_bin(name: str) -> str:
    """A console script of the running interpreter's environment (llamafactory-cli, torchrun)."""
    return str(Path(sys.executable).parent / name)


def cpu_env(work: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for LlamaFactory/DeepSpeed subprocesses on the CPU (DESIGN.md §6).

    Offline switches on; HF_HOME, MPLCONFIGDIR and TORCH_EXTENSIONS_DIR in the work dir unless the caller
    already chose them (tests share one TORCH_EXTENSIONS_DIR so DeepSpeed compiles its op once); the
    environment's bin/ first on PATH because LlamaFactory starts `torchrun` by name; API_HOST=127.0.0.1
    (LlamaFactory's default is 0.0.0.0, every interface); no GPU.
    """
    env = dict(os.environ if base is None else base)
    work = Path(work).resolve()
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": "", "API_HOST": "127.0.0.1"})
    env.setdefault("HF_HOME", str(work / "hf_home"))
    env.setdefault("MPLCONFIGDIR", str(work / "matplotlib"))
    env.setdefault("TORCH_EXTENSIONS_DIR", str(work / "torch_extensions"))
    bin_dir = str(Path(sys.executable).parent)
    if env.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file (for failure messages)."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_logged(name: str, cmd: Sequence[str], log: Path, env: Mapping[str, str],
               timeout: float = 900, cwd: Path = REPO) -> float:
    """Run cmd with stdout+stderr into log; its wall time in seconds. StepFailed (naming the log) if it fails.

    The command runs in its own process group, so a timeout kills torchrun's workers too.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        out.write("$ " + " ".join(map(str, cmd)) + "\n")
        out.flush()
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, env=dict(env),
                                cwd=cwd, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise StepFailed(f"{name}: no result after {timeout:.0f} s (killed); log: {log}") from None
        except BaseException:
            _kill_group(proc)
            raise
    if code != 0:
        raise StepFailed(f"{name}: exit code {code}; log: {log}\n{tail(log)}")
    return time.perf_counter() - start


def _kill_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group started for proc, then SIGKILL what is left after `grace` seconds."""
    if proc.poll() is not None:
        try:  # the leader is gone; children (torchrun workers) may still hold the group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# --- the OpenAI-compatible server -------------------------------------------------------------

class ApiServer:
    """`llamafactory-cli api RECIPE key=value ...` on 127.0.0.1, a free port, in its own process group.

    Use as a context manager: entering starts it and waits until /v1/models answers (the LlamaFactory
    server has no /health); leaving always kills the whole process group, even when the body raised.

        with ApiServer(TINY_RECIPES / "api_cpu.yaml", ["model_name_or_path=m"], env, log) as server:
            reply = ask(server.client(), server.model_name, image)
    """

    def __init__(self, recipe: Path, overrides: Sequence[str], env: Mapping[str, str], log: Path,
                 model_name: str = MODEL_NAME, timeout: float = 180.0) -> None:
        self.recipe, self.overrides, self.log = Path(recipe), list(overrides), Path(log)
        self.model_name, self.timeout = model_name, timeout
        self.port = free_port()
        self.env = {**env, "API_HOST": "127.0.0.1", "API_PORT": str(self.port), "API_MODEL_NAME": model_name}
        self.proc: subprocess.Popen | None = None
        self.ready_after: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "ApiServer":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [venv_bin("llamafactory-cli"), "api", str(self.recipe), *self.overrides]
        out = open(self.log, "w", encoding="utf-8")
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        try:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=REPO,
                                         start_new_session=True)
        finally:
            out.close()  # the child holds its own copy
        start = time.perf_counter()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.ready_after = time.perf_counter() - start
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StepFailed(f"serve: the API server exited with code {self.proc.returncode}; "
                                 f"log: {self.log}\n{tail(self.log)}")
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=2) as resp:
                    if resp.status == 200 and self.model_name in resp.read().decode():
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        raise StepFailed(f"serve: no answer on {self.base_url}/models after {self.timeout:.0f} s; log: {self.log}")

    def stop(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc)

    def client(self):
        """An `openai` SDK client for this server (built on demand; the key is unused but required)."""
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key="unused", max_retries=0, timeout=120)

    def __enter__(self) -> "ApiServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def image_data_url(path: Path) -> str:
    """The image as a base64 PNG data URL (LlamaFactory's server takes png/jpg/jpeg/gif/bmp, not webp).

    Pixels are sent as they are: the server resizes to the recipe's image_max_pixels, as training did.
    """
    from PIL import Image

    with Image.open(path) as img:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def ask(client, model: str, image: Path, max_tokens: int = REPLY_MAX_TOKENS) -> str:
    """One greedy chat completion: the image and our instruction prompt, as the model was trained."""
    from fracto_core.answer_format import instruction_prompt

    response = client.chat.completions.create(
        model=model, temperature=0, max_tokens=max_tokens,
        messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_data_url(image)}},
            {"type": "text", "text": instruction_prompt()},
        ]}],
    )
    return response.choices[0].message.content or ""


@dataclass(frozen=True)
class Question:
    image: Path  # absolute
    expected: str  # the dataset's answer (for the printout)


def split_questions(dataset_dir: Path, n: int, split_file: str = "fracto_test.json") -> list[Question]:
    """The first n samples of the builder's test split: image path and reference answer."""
    samples = json.loads((Path(dataset_dir) / split_file).read_text(encoding="utf-8"))
    return [Question((Path(dataset_dir) / s["images"][0]).resolve(), s["messages"][1]["content"])
            for s in samples[:n]]


# --- the smoke run ------------------------------------------------------------------------------

class StepClock:
    """Prints one line per step and keeps the timings for the closing table."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.times = total, 0, {}
        self.start = time.perf_counter()

    def begin(self, name: str, what: str) -> None:
        self.n += 1
        print(f"[{self.n}/{self.total}] {name:<6} {what}", flush=True)

    def done(self, name: str, seconds: float, detail: str = "") -> None:
        self.times[name] = seconds
        print(f"      {name:<6} ok in {seconds:5.1f} s" + (f"  {detail}" if detail else ""), flush=True)

    def summary(self) -> str:
        rows = [f"  {name:<6} {sec:6.1f} s" for name, sec in self.times.items()]
        return "\n".join(["Time per step:", *rows, f"  {'total':<6} {time.perf_counter() - self.start:6.1f} s"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.smoke",
        description="CPU smoke run of the whole pipeline with the tiny random Qwen3-VL: build the sample dataset, "
                    "build the tiny model, train LoRA (llamafactory-cli train), merge "
                    "(llamafactory-cli export), serve (llamafactory-cli api on 127.0.0.1), send a few requests "
                    "with the openai SDK, stop the server. A few minutes on 2 cores; the replies are noise "
                    "(random model).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help="work folder: sample_build/, tiny-qwen3vl/, tiny_runs/{lora_sft_cpu,merged,smoke}/ "
                             "(the default matches the tiny recipes' default paths)")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="use this built dataset_dir instead of building WORK/sample_build (skips the build step)")
    parser.add_argument("--model", type=Path, default=None,
                        help="use this tiny model folder instead of building WORK/tiny-qwen3vl")
    parser.add_argument("--requests", type=int, default=3, help="requests to send (test-split images)")
    parser.add_argument("--max-tokens", type=int, default=REPLY_MAX_TOKENS, help="max_tokens per reply")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override for the training recipe (repeatable), e.g. --set max_steps=4")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per step")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work = args.work.resolve()
    build_out, model, runs = work / "sample_build", work / "tiny-qwen3vl", work / "tiny_runs"
    adapter, merged, smoke_dir = runs / "lora_sft_cpu", runs / "merged", runs / "smoke"
    logs = smoke_dir / "logs"
    env = cpu_env(smoke_dir)
    py = sys.executable
    clock = StepClock(total=6 - (args.dataset is not None) - (args.model is not None))
    train_recipe, merge_recipe, api_recipe = (TINY_RECIPES / f for f in
                                              ("lora_sft_cpu.yaml", "merge_cpu.yaml", "api_cpu.yaml"))
    print(f"Smoke run in {work} (logs in {logs})", flush=True)
    try:
        if args.dataset is None:
            clock.begin("build", f"python -m dataset_builders.build --out {build_out} (sample corpus)")
            sec = run_logged("build", [py, "-m", "dataset_builders.build", "--out", build_out, "--quiet"],
                             logs / "build.log", env, args.timeout)
            dataset = build_out / "dataset"
            clock.done("build", sec, str(dataset))
        else:
            dataset = args.dataset.resolve()
        if args.model is None:
            clock.begin("model", f"python -m tiny_qwen3vl --out {model}")
            sec = run_logged("model", [py, "-m", "tiny_qwen3vl", "--out", model], logs / "model.log", env,
                             args.timeout)
            clock.done("model", sec, str(model))
        else:
            model = args.model.resolve()

        train_overrides = [f"model_name_or_path={model}", f"dataset_dir={dataset}", f"output_dir={adapter}",
                           *args.overrides]
        clock.begin("train", f"llamafactory-cli train {train_recipe.relative_to(REPO)}")
        sec = run_logged("train", [venv_bin("llamafactory-cli"), "train", train_recipe, *train_overrides],
                         logs / "train.log", env, args.timeout)
        losses = [r["loss"] for r in map(json.loads, (adapter / "trainer_log.jsonl").read_text().splitlines())
                  if "loss" in r]
        clock.done("train", sec, f"losses {', '.join(f'{x:.3f}' for x in losses)}; adapter {adapter}")

        clock.begin("merge", f"llamafactory-cli export {merge_recipe.relative_to(REPO)}")
        sec = run_logged("merge", [venv_bin("llamafactory-cli"), "export", merge_recipe, f"model_name_or_path={model}",
                                   f"adapter_name_or_path={adapter}", f"export_dir={merged}"],
                         logs / "merge.log", env, args.timeout)
        clock.done("merge", sec, str(merged))

        clock.begin("serve", f"llamafactory-cli api {api_recipe.relative_to(REPO)} (merged model, 127.0.0.1)")
        server = ApiServer(api_recipe, [f"model_name_or_path={merged}"], env, logs / "serve.log",
                           timeout=min(args.timeout, 300))
        with server:
            clock.done("serve", server.ready_after, f"{server.base_url} model {MODEL_NAME}")
            clock.begin("ask", f"{args.requests} request(s) with the openai SDK (temperature 0)")
            sec = ask_questions(server, dataset, args.requests, args.max_tokens, smoke_dir / "replies.jsonl")
            clock.done("ask", sec, f"replies in {smoke_dir / 'replies.jsonl'}")
            t0 = time.perf_counter()
        clock.times["stop"] = time.perf_counter() - t0
        print(f"      server stopped ({clock.times['stop']:.1f} s)")
    except StepFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        print(clock.summary(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted (any server was stopped)", file=sys.stderr)
        return 130
    print(clock.summary())
    print("All steps passed. The replies mean nothing: a random model after a few steps at most echoes the "
          "answer format; real runs use the llamafactory_configs/qwen3vl_*/ recipes on GPUs "
          "(llamafactory_configs/README.md).")
    return 0


def ask_questions(server: ApiServer, dataset: Path, n: int, max_tokens: int, out: Path) -> float:
    """Send n test-split questions, print replies and how they parse, write them as JSONL; wall time."""
    from fracto_core.answer_format import parse_answer

    start = time.perf_counter()
    client = server.client()
    records = []
    for q in split_questions(dataset, n):
        try:
            reply = ask(client, server.model_name, q.image, max_tokens)
        except Exception as exc:  # openai.APIError and friends: the server's log says why
            raise StepFailed(f"ask: {type(exc).__name__}: {exc}; server log: {server.log}\n{tail(server.log)}") from exc
        parsed = parse_answer(reply)
        records.append({"image": q.image.name, "expected": q.expected, "reply": reply, "status": parsed.status,
                        "features": list(parsed.features), "max_tokens": max_tokens})
        print(f"      {q.image.name}: {reply!r}")
        print(f"        -> parse: {parsed.status}" + (f" ({parsed.detail})" if parsed.detail else "")
              + f"; expected {q.expected}")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    print("      (expected: noise, or the answer format with arbitrary labels -- the tiny model's weights are random "
          "and it trained for a few steps only)")
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
