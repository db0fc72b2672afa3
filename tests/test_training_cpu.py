"""Real LlamaFactory runs on the CPU: LoRA, ZeRO-3 under torchrun, early stopping, merge, serving, smoke run.

Every run is the real `llamafactory-cli` (train / export / api) as a subprocess on the tiny random Qwen3-VL
(`tiny_dir`) and the builder's dataset (`built`), with the llamafactory_configs/tiny/ recipes and key=value
overrides, kept tiny: max_samples 8, 2-5 optimizer steps, image_max_pixels 65536 (64 image tokens; a sample
is ~255 tokens, cutoff_len 1024). Each test prints its wall time. Servers run in their own process group
and are killed when the test ends, also on failure.
"""

from __future__ import annotations

import json
import shutil
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import teardown_abort
from training.smoke import (
    REPO,
    TINY_RECIPES,
    ApiServer,
    StepFailed,
    _kill_group,
    ask,
    cpu_env,
    free_port,
    run_logged,
    split_questions,
    venv_bin,
)

LORA = TINY_RECIPES / "lora_sft_cpu.yaml"
LORA_ZERO3 = TINY_RECIPES / "lora_sft_zero3_cpu.yaml"
EARLY_STOP = TINY_RECIPES / "early_stop_cpu.yaml"
API = TINY_RECIPES / "api_cpu.yaml"
TINY_RUN = ["max_samples=8", "image_max_pixels=65536", "cutoff_len=1024"]  # explicit, whatever the defaults become
RUN_TIMEOUT = 600


# --- fixtures and helpers ------------------------------------------------------------------------

# Shared runs (module fixtures) set up before the first test that needs them; their time is charged to it.
_SHARED_RUN_SECONDS: list[tuple[str, float]] = []


@pytest.fixture(autouse=True)
def _wall_time(request):
    """Print each test's wall time, including the shared runs set up for it (shown even without -s)."""
    start = time.perf_counter()
    yield
    own = time.perf_counter() - start
    shared = [_SHARED_RUN_SECONDS.pop() for _ in range(len(_SHARED_RUN_SECONDS))][::-1]
    total = own + sum(sec for _, sec in shared)
    detail = "".join(f" + {name} {sec:.1f} s" for name, sec in shared)
    line = f"[wall time] {request.node.name}: {total:.1f} s" + (f" (test {own:.1f} s{detail})" if shared else "")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("training_cpu")


@pytest.fixture(scope="module")
def env(train_env, work) -> dict[str, str]:
    """The session's train_env (shared TORCH_EXTENSIONS_DIR, offline) plus the venv's bin/ on PATH."""
    return cpu_env(work, base=train_env)


@pytest.fixture(scope="module")
def dataset(request) -> Path:
    """The builder's dataset_dir (session fixture `built`); also makes `tiny_dir`, timing both."""
    start = time.perf_counter()
    out, _results = request.getfixturevalue("built")
    request.getfixturevalue("tiny_dir")
    _SHARED_RUN_SECONDS.append(("session fixtures built + tiny_dir", time.perf_counter() - start))
    return out / "dataset"


def paths(tiny_dir: Path, dataset: Path, output_dir: Path) -> list[str]:
    return [f"model_name_or_path={tiny_dir}", f"dataset_dir={dataset}", f"output_dir={output_dir}"]


def train(recipe: Path, overrides: list[str], env: dict[str, str], log: Path) -> float:
    return run_logged(log.stem, [venv_bin("llamafactory-cli"), "train", recipe, *overrides], log, env, RUN_TIMEOUT)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan killed in a container may wait unreaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_alive(pgid: int) -> bool:
    """Some live (non-zombie) process still belongs to process group pgid."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False


def load_adapter(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def logged_losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "trainer_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def assert_trained_adapter(run: Path) -> dict:
    """The adapter exists, covers the language model only, and every LoRA B matrix moved off zero."""
    adapter = load_adapter(run)
    b_keys = sorted(k for k in adapter if ".lora_B." in k)
    a_keys = sorted(k for k in adapter if ".lora_A." in k)
    # 2 layers x (q, k, v, o, gate, up, down): lora_target all, vision tower and projector frozen
    assert len(b_keys) == len(a_keys) == 14, sorted(adapter)
    assert all(".language_model." in k for k in adapter), [k for k in adapter if ".language_model." not in k]
    for key in b_keys:  # LoRA initialises B to zero: non-zero B means the optimizer really stepped
        assert adapter[key].abs().max().item() > 0, key
    return adapter


# --- LoRA without DeepSpeed (also the reference for ZeRO-3 below) -----------------------------------

@pytest.fixture(scope="module")
def plain_run(dataset, tiny_dir, env, work, deepspeed_op) -> Path:
    """lora_sft_cpu.yaml, 2 steps x gradient accumulation 2: the single-process twin of 2 ZeRO-3 ranks.

    (It requests deepspeed_op only to start that background build as early as possible.)
    """
    out = work / "plain"
    start = time.perf_counter()
    train(LORA, [*paths(tiny_dir, dataset, out), *TINY_RUN, "max_steps=2", "gradient_accumulation_steps=2"],
          env, work / "logs" / "plain.log")
    _SHARED_RUN_SECONDS.append(("plain LoRA run", time.perf_counter() - start))
    return out


@pytest.mark.slow
def test_lora_without_deepspeed_trains_an_adapter_and_logs_the_loss(plain_run: Path, tiny_dir: Path) -> None:
    assert_trained_adapter(plain_run)
    losses = logged_losses(plain_run)
    assert len(losses) == 2 and all(math.isfinite(x) and 0 < x < 20 for x in losses), losses
    state = json.loads((plain_run / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert [h["loss"] for h in state["log_history"] if "loss" in h] == pytest.approx(losses)
    # a random model starts near the uniform guess: ln(vocabulary size) ≈ 6.9 nats per token
    vocab = json.loads((tiny_dir / "config.json").read_text())["text_config"]["vocab_size"]
    assert abs(losses[0] - math.log(vocab)) < 0.5, (losses[0], vocab)


# --- early stopping ----------------------------------------------------------------------------

@pytest.mark.slow
def test_early_stopping_stops_before_max_steps_and_restores_the_best_adapter(tiny_dir, dataset, env,
                                                                             work) -> None:
    from training.recipes import load_recipe

    out = work / "early_stop"
    recipe = load_recipe(EARLY_STOP)
    patience, max_steps = recipe["early_stopping_steps"], recipe["max_steps"]
    assert recipe["load_best_model_at_end"] is True and recipe["metric_for_best_model"] == "eval_loss"
    train(EARLY_STOP, [*paths(tiny_dir, dataset, out), *TINY_RUN], env, work / "logs" / "early_stop.log")

    state = json.loads((out / "trainer_state.json").read_text())
    evals = {h["step"]: h["eval_loss"] for h in state["log_history"] if "eval_loss" in h}
    steps = state["global_step"]
    print(f"early stop: {steps}/{max_steps} steps, eval_loss by step {evals}, best step {state['best_global_step']}")
    assert steps < max_steps  # it stopped early
    assert sorted(evals) == list(range(1, steps + 1))  # one evaluation round per step
    best = state["best_global_step"]
    # the patience logic: the best round, then `patience` rounds without improvement, then stop
    assert evals[best] == min(evals.values()) == pytest.approx(state["best_metric"])
    assert steps - best == patience
    assert all(evals[s] >= evals[best] for s in range(best + 1, steps + 1))
    callback = state["stateful_callbacks"]["EarlyStoppingCallback"]
    assert callback["args"]["early_stopping_patience"] == patience
    assert callback["attributes"]["early_stopping_patience_counter"] == patience
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best}")
    # load_best_model_at_end: the adapter written at the end is the best checkpoint's, not the last step's
    final, best_ckpt = load_adapter(out), load_adapter(out / f"checkpoint-{best}")
    assert final.keys() == best_ckpt.keys()
    assert all(final[k].equal(best_ckpt[k]) for k in final)
    last = out / f"checkpoint-{steps}"
    if last.exists():
        assert any(not load_adapter(last)[k].equal(final[k]) for k in final)


# --- smoke run: train -> merge -> serve merged -> ask; then base + adapter and base served ----------

@pytest.fixture(scope="module")
def smoke(dataset, tiny_dir, env, work) -> tuple[Path, str]:
    """`python -m training.smoke` on the session's model and dataset: (WORK/tiny_runs, its stdout)."""
    out = work / "smoke"
    log = work / "logs" / "smoke.log"
    start = time.perf_counter()
    run_logged("smoke", [sys.executable, "-m", "training.smoke", "--work", out, "--dataset", dataset,
                         "--model", tiny_dir, "--requests", "3"], log, env, RUN_TIMEOUT)
    _SHARED_RUN_SECONDS.append(("smoke run", time.perf_counter() - start))
    return out / "tiny_runs", log.read_text()


@pytest.mark.slow
def test_smoke_run_passes_every_step(smoke) -> None:
    out, stdout = smoke
    for n, step in enumerate(("train", "merge", "serve", "ask"), start=1):
        assert f"[{n}/4] {step}" in stdout and f"{step:<6} ok in" in stdout, step
    assert "All steps passed" in stdout
    total = next(line for line in stdout.splitlines() if line.strip().startswith("total"))
    print(f"smoke run (no build, no model step): {total.split()[-2]} s")
    replies = [json.loads(line) for line in (out / "smoke" / "replies.jsonl").read_text().splitlines()]
    assert len(replies) == 3
    assert all(r["status"] in ("ok", "mapped", "unparseable") and isinstance(r["reply"], str) for r in replies)
    assert len(logged_losses(out / "lora_sft_cpu")) == 4  # the recipe's max_steps


@pytest.mark.slow
def test_merged_model_loads_and_equals_base_plus_adapter(tiny_dir, smoke) -> None:
    """The merged weights are exactly W + (alpha / r) * B @ A on the LoRA targets and W elsewhere."""
    import torch
    from transformers import AutoModelForImageTextToText

    out, _ = smoke
    merged = AutoModelForImageTextToText.from_pretrained(out / "merged").state_dict()
    base = AutoModelForImageTextToText.from_pretrained(tiny_dir).state_dict()
    adapter = load_adapter(out / "lora_sft_cpu")
    config = json.loads((out / "lora_sft_cpu" / "adapter_config.json").read_text())
    scaling = config["lora_alpha"] / config["r"]
    assert merged.keys() == base.keys()
    targets = {k.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
               for k in adapter if ".lora_A." in k}
    assert targets and targets <= merged.keys()
    for key in merged:
        if key in targets:
            lora_a = adapter["base_model.model." + key.replace(".weight", ".lora_A.weight")]
            lora_b = adapter["base_model.model." + key.replace(".weight", ".lora_B.weight")]
            torch.testing.assert_close(merged[key], base[key] + scaling * lora_b @ lora_a, rtol=1e-5, atol=1e-6)
            assert not torch.equal(merged[key], base[key]), key
        else:
            assert torch.equal(merged[key], base[key]), key


@pytest.mark.slow
def test_served_merged_equals_base_plus_adapter_and_differs_from_base(tiny_dir, dataset, env, work, smoke) -> None:
    """Greedy replies over the real OpenAI-compatible server: merged (from the smoke run) == base + adapter
    != base, for the same images, prompt, template, pixel budget and max_tokens."""
    out, _ = smoke
    merged = [json.loads(line) for line in (out / "smoke" / "replies.jsonl").read_text().splitlines()]
    questions = split_questions(dataset, len(merged))
    assert [q.image.name for q in questions] == [r["image"] for r in merged]
    max_tokens = merged[0]["max_tokens"]
    logs = work / "logs"
    with ApiServer(API, [f"model_name_or_path={tiny_dir}", f"adapter_name_or_path={out / 'lora_sft_cpu'}"], env,
                   logs / "serve_adapter.log", model_name="tiny-lora") as with_adapter, \
         ApiServer(API, [f"model_name_or_path={tiny_dir}"], env, logs / "serve_base.log",
                   model_name="tiny-base") as base:
        pgids = [with_adapter.proc.pid, base.proc.pid]
        adapter_replies = [ask(with_adapter.client(), "tiny-lora", q.image, max_tokens) for q in questions]
        base_replies = [ask(base.client(), "tiny-base", q.image, max_tokens) for q in questions]
    assert not any(group_alive(pgid) for pgid in pgids)  # the servers' whole process groups are gone
    merged_replies = [r["reply"] for r in merged]
    print("merged:      ", merged_replies, "\nbase+adapter:", adapter_replies, "\nbase:        ", base_replies)
    assert adapter_replies == merged_replies
    assert all(b != m for b, m in zip(base_replies, merged_replies))
    assert all(len(r) > 0 for r in base_replies + merged_replies)


# --- ZeRO-3 (last: its DeepSpeed op compiles in the background while the runs above use the CPU) ----

PREBUILD_DEEPSPEED_OP = (
    "from deepspeed.accelerator import get_accelerator\n"
    "builder = get_accelerator().create_op_builder('ShareMemCommBuilder')\n"
    "builder.load()  # JIT-compiles into TORCH_EXTENSIONS_DIR once; later loads are instant\n"
)


@pytest.fixture(scope="module")
def deepspeed_op(env, work):
    """Compile DeepSpeed's CPU shm_comm op in the background; the fixture's value waits for it (seconds).

    deepspeed.comm's TorchBackend JIT-compiles this op on the first ZeRO-3 run: ~95 s of CPU here (1.9 min
    alone, ~3 min on a busy 2-core machine). Started with the first slow test, it overlaps the runs that are
    mostly single-threaded Python start-up. The build is cached in the session's TORCH_EXTENSIONS_DIR, so
    later ZeRO-3 runs (and the Slurm tests sharing train_env) only load it. torch guards the build with an
    OS advisory lock, so killing it half-way (at teardown) leaves no stale lock behind.
    """
    log = work / "logs" / "deepspeed_op.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", PREBUILD_DEEPSPEED_OP], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=REPO, start_new_session=True)

    def wait() -> float:
        code = proc.wait(timeout=RUN_TIMEOUT)
        assert code == 0, f"building DeepSpeed's shm_comm op failed; log: {log}\n{log.read_text()[-3000:]}"
        return time.perf_counter() - start

    yield wait
    _kill_group(proc)


@pytest.mark.slow
def test_zero3_two_processes_matches_single_process_with_accumulation(tiny_dir, dataset, env, work,
                                                                       plain_run: Path, deepspeed_op) -> None:
    """ZeRO-3 with 2 ranks x batch 1 == no DeepSpeed with 1 process x accumulation 2 (same seed and data).

    Measured here: the adapters agree up to float rounding, not bit for bit (max |diff| ~1e-8 at lr 1e-3,
    ~5e-6 at the recipe's lr 1e-2: Adam's first step g / (|g| + eps) amplifies rounding on tiny gradients).
    With the same per-device settings (accumulation 1) they would differ by ~2 x lr (~2e-2), as every
    optimizer step would see half the data: 2 ranks double the effective batch.
    """
    prebuild_seconds = deepspeed_op()
    out = work / "zero3"
    zero3_env = {**env, "FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(free_port())}
    log = work / "logs" / "zero3.log"
    try:
        seconds = train(LORA_ZERO3, [*paths(tiny_dir, dataset, out), *TINY_RUN, "max_steps=2"], zero3_env, log)
    except StepFailed:
        if not teardown_abort(log.read_text(errors="replace"), nodes=1):
            raise
        # torch's exit path, not training (support.teardown_abort): repeated once, the first log kept beside it
        log.rename(log.with_name("zero3-attempt1.log"))
        shutil.rmtree(out, ignore_errors=True)
        zero3_env["MASTER_PORT"] = str(free_port())
        seconds = train(LORA_ZERO3, [*paths(tiny_dir, dataset, out), *TINY_RUN, "max_steps=2"], zero3_env, log)
    text = log.read_text(errors="replace")
    assert "world size: 2" in text and "Detected DeepSpeed ZeRO-3" in text  # really 2 ranks, really ZeRO-3
    print(f"ZeRO-3 run: {seconds:.1f} s; DeepSpeed op ready {prebuild_seconds:.1f} s after the background "
          "build started")

    zero3 = assert_trained_adapter(out)
    assert len(logged_losses(out)) == 2
    plain = load_adapter(plain_run)
    assert zero3.keys() == plain.keys()
    assert all(zero3[k].shape == plain[k].shape for k in plain)  # gathered from the shards, not partitions
    diff = max((zero3[k] - plain[k]).abs().max().item() for k in plain)
    scale = max(plain[k].abs().max().item() for k in plain if ".lora_B." in k)
    rel = max(((zero3[k] - plain[k]).norm() / plain[k].norm()).item() for k in plain)
    print(f"ZeRO-3 (2 ranks) vs plain (accumulation 2): max |diff| {diff:.1e}, max |B| {scale:.1e}, "
          f"worst relative norm {rel:.1e}")
    assert rel < 1e-3
    assert diff < 0.05 * scale  # a different batching would differ by ~scale


# --- fast checks of the process handling ------------------------------------------------------------

def test_smoke_help_lists_the_pipeline() -> None:
    result = subprocess.run([sys.executable, "-m", "training.smoke", "--help"], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 0
    for word in ("--work", "--dataset", "--model", "--requests", "llamafactory-cli train", "export", "api"):
        assert word in result.stdout, word
    import training.smoke

    assert training.smoke.__doc__.splitlines()[2].strip() == "Usage:"


def test_failing_step_names_its_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "train.log"
    cmd = [sys.executable, "-c", "import sys; print('loading the recipe'); sys.exit('bad key: lora_rnak')"]
    with pytest.raises(StepFailed) as info:
        run_logged("train", cmd, log, dict(os.environ), timeout=60)
    message = str(info.value)
    assert message.startswith("train: exit code 1; log: " + str(log))
    assert "bad key: lora_rnak" in message and "loading the recipe" in log.read_text()


def test_step_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A timed-out step takes its children with it (torchrun's workers, a server's workers)."""
    pid_file = tmp_path / "child.pid"
    script = (f"import subprocess, time; p = subprocess.Popen(['sleep', '60']); "
              f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    with pytest.raises(StepFailed, match="no result after 2 s"):
        run_logged("hang", [sys.executable, "-c", script], tmp_path / "hang.log", dict(os.environ), timeout=2)
    child = int(pid_file.read_text())
    time.sleep(0.2)
    assert not alive(child)


def test_kill_group_reaps_children_left_by_a_finished_leader() -> None:
    proc = subprocess.Popen(["bash", "-c", "sleep 60 & echo $!"], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    child = int(proc.stdout.readline())
    proc.wait(timeout=10)  # the leader exits at once; its child keeps the group alive
    assert alive(child)
    _kill_group(proc)
    time.sleep(0.2)
    assert not alive(child)
