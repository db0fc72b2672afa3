"""slurm/ scripts on a real one-node Slurm started here (slurm/local_cluster), plus their fast parts.

The slow tests need root and the Debian packages (slurm/local_cluster/install.sh; CI runs it first);
they are skipped with the reason when the cluster cannot be installed or started. Each test's wall time is
printed (`[slurm] name: N s`) for the issue's closing note.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from support import teardown_abort
from training import serving
from training.recipes import DEFAULT_MAX_LORA_RANK, load_recipe

REPO = Path(__file__).resolve().parents[1]
SLURM = REPO / "slurm"
TINY_RECIPE = REPO / "llamafactory_configs" / "tiny" / "lora_sft_cpu.yaml"
ZERO3_RECIPE = REPO / "llamafactory_configs" / "tiny" / "lora_sft_zero3_cpu.yaml"
HOST = os.uname().nodename.split(".")[0]
JOB_TIMEOUT = 240  # seconds; a hung job fails the test instead of hanging CI
ZERO3_TIMEOUT = 900  # the first ZeRO-3 job JIT-compiles a DeepSpeed op (~100 s, more on a busy machine)


# --- helpers -----------------------------------------------------------------------------------------------

def report_time(config, what: str, seconds: float) -> None:
    """Print a wall time past pytest's output capture (the issue's closing note lists them)."""
    with config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\n[slurm] {what}: {seconds:.1f} s", flush=True)


@pytest.fixture(autouse=True)
def _wall_time(request):
    """Each slow test's own wall time (the shared train job is reported by its fixture)."""
    t0 = time.perf_counter()
    yield
    if request.node.get_closest_marker("slow"):
        report_time(request.config, request.node.name, time.perf_counter() - t0)


def run(cmd: list[str], env: dict | None = None, cwd: Path | None = None, timeout: float = 120,
        check: bool = False) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def sha_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class Cluster:
    """The local cluster: env for Slurm commands, job submission and the jobs' real final states."""

    def __init__(self, state: Path, env: dict[str, str]):
        self.state, self.env = state, env

    def sbatch(self, args: list, cwd: Path, env: dict | None = None, wait: bool = True,
               timeout: float = JOB_TIMEOUT) -> int:
        cmd = ["timeout", str(timeout), "sbatch", "--parsable", *(["--wait"] if wait else []), *args]
        done = run(cmd, env={**self.env, **(env or {})}, cwd=cwd, timeout=timeout + 10)
        match = re.search(r"^(\d+)", done.stdout.strip())
        assert match, f"sbatch gave no job id (rc {done.returncode}):\n{done.stdout}\n{done.stderr}"
        return int(match.group(1))

    def state_of(self, job_id: int, timeout: float = 30) -> str:
        """The job's final state from the jobcomp file (written when the job ends), not sbatch's exit code."""
        pattern = re.compile(rf"^JobId={job_id} .*?JobState=(\S+)", re.M)
        deadline = time.monotonic() + timeout
        while True:
            text = (self.state / "jobcomp" / "jobcomp.txt").read_text() if (self.state / "jobcomp" / "jobcomp.txt").exists() else ""
            found = pattern.findall(text)
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                return "NOT_FINISHED"
            time.sleep(0.5)

    def diagnose(self, job_id: int) -> str:
        """What Slurm says of a job, and the daemons' last log lines: the message of a failed wait."""
        show = run(["scontrol", "show", "job", str(job_id)], env=self.env).stdout
        logs = "".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-25:]) + "\n"
                       for p in sorted((self.state / "log").glob("*.log")))
        return f"--- scontrol show job {job_id}\n{show}{logs}"

    def scontrol_state(self, job_id: int) -> str:
        out = run(["scontrol", "show", "job", str(job_id)], env=self.env).stdout
        match = re.search(r"JobState=(\S+)", out)
        return match.group(1) if match else "UNKNOWN"


@pytest.fixture(scope="session")
def cluster(request):
    """A two-node Slurm (two slurmd daemons on this machine) with 4 fake GPUs each and task/affinity CPU binding,
    all state in a temp folder; stopped and deleted at the end."""
    if os.geteuid() != 0:
        pytest.skip("local Slurm needs root (munged/slurmctld/slurmd are started by the test setup)")
    if not shutil.which("slurmctld"):
        done = run(["bash", SLURM / "local_cluster" / "install.sh"], timeout=600)
        if done.returncode != 0 or not shutil.which("slurmctld"):
            pytest.skip(f"Slurm could not be installed here: {done.stderr.strip()[-300:]}")
    # Not pytest's tmp dir: the munge user must be able to enter the state folder (pytest's are 0700).
    state = Path(tempfile.mkdtemp(prefix="fracto-slurm-", dir="/tmp"))
    t0 = time.perf_counter()
    done = run(["bash", SLURM / "local_cluster" / "start.sh", state], env={**os.environ, "N_NODES": "2"}, timeout=120)
    if done.returncode != 0:
        run(["bash", SLURM / "local_cluster" / "stop.sh", state, "--purge"])
        pytest.skip(f"local Slurm did not start: {done.stdout[-300:]} {done.stderr[-500:]}")
    report_time(request.config, "local cluster start (start.sh)", time.perf_counter() - t0)
    env = {**os.environ, "SLURM_CONF": str(state / "etc" / "slurm.conf")}
    yield Cluster(state, env)
    run(["bash", SLURM / "local_cluster" / "stop.sh", state, "--purge"])


@pytest.fixture(scope="module")
def jobdir(tmp_path_factory) -> Path:
    """The jobs' working folder (logs/ under it, as the #SBATCH --output lines expect)."""
    d = tmp_path_factory.mktemp("jobs")
    (d / "logs").mkdir()
    return d


def tiny_overrides(tiny_dir: Path, dataset: Path, output: Path, **extra) -> list[str]:
    values = {"model_name_or_path": tiny_dir, "dataset_dir": dataset, "output_dir": output, "max_steps": 2,
              "max_samples": 8, "image_max_pixels": 65536, "bf16": "false", **extra}
    return [f"--set={k}={v}" for k, v in values.items()]


CPU_JOB = ["--gres=none", "--cpus-per-task=2", "--mem=4G"]  # override the A100 defaults of the scripts


@pytest.fixture(scope="module")
def train_job(cluster, jobdir, tiny_dir, built, train_env, tmp_path_factory, request):
    """One real `sbatch --wait slurm/train.sh` of the tiny recipe (checkpoints every step, for resume)."""
    out_dir = tmp_path_factory.mktemp("train") / "run"
    env = {**train_env, "NPROC_PER_NODE": "1"}
    t0 = time.perf_counter()
    job = cluster.sbatch([*CPU_JOB, SLURM / "train.sh", TINY_RECIPE,
                          *tiny_overrides(tiny_dir, built[0] / "dataset", out_dir, save_strategy="steps",
                                          save_steps=1)], cwd=jobdir, env=env)
    seconds = time.perf_counter() - t0
    report_time(request.config, "train job (sbatch --wait slurm/train.sh, tiny recipe, 2 steps)", seconds)
    return {"job": job, "out": out_dir, "log": jobdir / "logs" / f"fracto-train-{job}.out",
            "seconds": seconds, "env": env, "tiny": tiny_dir}


# --- the cluster jobs (slow) -------------------------------------------------------------------------------

@pytest.mark.slow
def test_train_job_completes_with_adapter_and_run_card(cluster, train_job, built):
    log = train_job["log"].read_text()
    assert cluster.state_of(train_job["job"]) == "COMPLETED", log[-3000:]
    out = train_job["out"]
    assert (out / "adapter_model.safetensors").stat().st_size > 0
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8
    card = json.loads((out / "run_card.json").read_text())
    assert card["slurm"]["job_id"] == str(train_job["job"])
    assert card["slurm"]["nodes"] == [os.uname().nodename.split(".")[0]]
    assert card["recipe"]["output_dir"] == str(out) and card["recipe"]["max_steps"] == 2
    dataset = built[0] / "dataset"
    expected = hashlib.sha256((dataset / "dataset_card.json").read_bytes()).hexdigest()
    assert card["dataset_card"]["sha256"] == expected
    info = json.loads((dataset / "dataset_info.json").read_text())
    read = [dataset / "dataset_info.json", *(dataset / info[n]["file_name"] for n in ("fracto_train", "fracto_val"))]
    assert card["dataset_files"] == {str(f.resolve()): hashlib.sha256(f.read_bytes()).hexdigest() for f in read}
    assert card["model"]["id"] == str(train_job["tiny"]) and card["model"]["revision"] == "main"
    assert card["model"]["config_sha256"] == hashlib.sha256((train_job["tiny"] / "config.json").read_bytes()).hexdigest()
    assert card["git"]["commit"] and isinstance(card["git"]["dirty"], bool)
    assert card["effective_batch"]["value"] == 1 and card["effective_batch"]["nodes"] == 1
    assert card["slurm"]["cpus_per_task"] == "2"
    assert card["versions"]["llamafactory"] == "0.9.5" and card["versions"]["torch"]
    assert card["launcher"]["RDZV_ID"] == str(train_job["job"]) and card["launcher"]["NPROC_PER_NODE"] == "1"
    assert "launcher: task=0" in log and "NODE_RANK=0" in log
    assert "cpus=2 SLURM_CPUS_PER_TASK=2" in log  # the launcher task got the job's 2 CPUs (task/affinity binds)
    assert "launch_plan: effective batch 1 = 1 node(s) x 1 GPU(s) x per-device 1 x accumulation 1" in log
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    assert re.search(r"train.sh: finished with exit code 0 after \d+s", log)


@pytest.mark.slow
def test_resubmitted_train_job_resumes_from_latest_checkpoint(cluster, train_job, jobdir, tiny_dir, built):
    out = train_job["out"]
    assert (out / "checkpoint-2").is_dir()
    # Two newer checkpoints as a job killed while saving leaves them: no trainer_state.json; truncated weights.
    shutil.copytree(out / "checkpoint-2", out / "checkpoint-5")
    (out / "checkpoint-5" / "trainer_state.json").unlink()
    shutil.copytree(out / "checkpoint-2", out / "checkpoint-4")
    weights = out / "checkpoint-4" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    job = cluster.sbatch([*CPU_JOB, SLURM / "train.sh", TINY_RECIPE,
                          *tiny_overrides(tiny_dir, built[0] / "dataset", out, max_steps=3, save_strategy="steps",
                                          save_steps=1)], cwd=jobdir, env=train_job["env"])
    log = (jobdir / "logs" / f"fracto-train-{job}.out").read_text()
    assert cluster.state_of(job) == "COMPLETED", log[-3000:]
    assert f"launch_plan: skipping {out}/checkpoint-5: no trainer_state.json (the save did not finish)" in log
    assert f"launch_plan: skipping {out}/checkpoint-4: adapter_model.safetensors is truncated" in log
    assert f"launch_plan: resuming from {out}/checkpoint-2" in log
    assert "Resuming training from checkpoint with epoch 0 and global step 2" in log  # the HF Trainer's line
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    card = json.loads((out / "run_card.json").read_text())
    assert card["resume_from_checkpoint"] == f"{out}/checkpoint-2" and card["slurm"]["job_id"] == str(job)
    assert len((out / "run_cards.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_typo_in_recipe_fails_fast_before_training(cluster, jobdir, tiny_dir, built, train_env, tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(TINY_RECIPE.read_text().replace("lora_rank:", "lora_rnak:"))
    out = tmp_path / "run"
    t0 = time.perf_counter()
    job = cluster.sbatch([*CPU_JOB, SLURM / "train.sh", recipe, *tiny_overrides(tiny_dir, built[0] / "dataset", out)],
                         cwd=jobdir, env={**train_env, "NPROC_PER_NODE": "1"})
    seconds = time.perf_counter() - t0
    log = (jobdir / "logs" / f"fracto-train-{job}.out").read_text()
    assert cluster.state_of(job) == "FAILED", log
    assert "lora_rnak" in log and "recipe check failed" in log
    assert "launcher:" not in log and not out.exists()  # no task started, no run card, no output
    assert seconds < 60, f"the bad recipe took {seconds:.0f}s to fail"


@pytest.mark.slow
def test_two_task_gpu_job_shows_multinode_wiring(cluster, jobdir, tiny_dir, built, train_env, tmp_path):
    """Two tasks play two nodes (SIMULATE_NODES=1); --gres=gpu:2 (fake GPUs) gives NPROC_PER_NODE=2."""
    env = {k: v for k, v in train_env.items() if k not in ("NPROC_PER_NODE", "CUDA_VISIBLE_DEVICES")}
    job = cluster.sbatch(["--nodes=1", "--ntasks=2", "--ntasks-per-node=2", "--cpus-per-task=1", "--mem=2G",
                          "--gres=gpu:2", SLURM / "train.sh", TINY_RECIPE, "--dry-run",
                          *tiny_overrides(tiny_dir, built[0] / "dataset", tmp_path / "run")],
                         cwd=jobdir, env={**env, "SIMULATE_NODES": "1"})
    log = (jobdir / "logs" / f"fracto-train-{job}.out").read_text()
    assert cluster.state_of(job) == "COMPLETED", log
    lines = [dict(kv.split("=", 1) for kv in line.split()[1:]) for line in log.splitlines()
             if line.startswith("launcher:")]
    assert sorted(int(x["NODE_RANK"]) for x in lines) == [0, 1]
    assert sorted(int(x["task"]) for x in lines) == [0, 1]
    assert {x["NNODES"] for x in lines} == {"2"}
    assert len({(x["MASTER_ADDR"], x["MASTER_PORT"]) for x in lines}) == 1
    assert lines[0]["MASTER_ADDR"] == "127.0.0.1"  # the first node's NodeAddr (start.sh declares 127.0.0.1)
    assert int(lines[0]["MASTER_PORT"]) >= 20000 and {x["RDZV_ID"] for x in lines} == {str(job)}
    assert {x["cpus"] for x in lines} == {"1"}  # --cpus-per-task=1 each
    assert {x["NPROC_PER_NODE"] for x in lines} == {"2"}  # from the allocation's GPUs
    assert not (tmp_path / "run").exists()  # dry run: nothing written
    # An impossible request is refused at submission (EnforcePartLimits), not left pending.
    done = run(["sbatch", "--gres=gpu:16", SLURM / "train.sh", TINY_RECIPE], env=cluster.env, cwd=jobdir)
    assert done.returncode != 0 and "error" in done.stderr.lower()


@pytest.mark.slow
def test_build_array_then_merge_equals_single_build(cluster, jobdir, corpus_dir, built, tmp_path):
    out = tmp_path / "sharded"
    job = cluster.sbatch(["--array=0-2", "--cpus-per-task=1", "--mem=2G", SLURM / "build.sh",
                          "--papers", corpus_dir / "papers", "--out", out, "--manual", corpus_dir / "manual",
                          "--seed", "3", "--min-split-papers", "1"], cwd=jobdir)  # as the `built` fixture
    logs = "".join(p.read_text() for p in sorted((jobdir / "logs").glob(f"fracto-build-{job}_*.out")))
    assert logs.count("build.sh: finished with exit code 0") == 3, logs
    # The merge job depends on afterok of the whole array: COMPLETED means every shard succeeded too.
    merge_job = int((out / "merge_job_id").read_text())
    merge_state = cluster.state_of(merge_job, timeout=JOB_TIMEOUT)
    merge_log = (jobdir / "logs" / f"fracto-build-merge-{merge_job}.out").read_text()
    assert merge_state == "COMPLETED", logs + merge_log
    assert "shard 0/3" in logs and "shard 2/3" in logs and "linked 8 paper(s) from 3 shard(s)" in merge_log
    assert sha_tree(out / "dataset") == sha_tree(built[0] / "dataset")
    # Provenance is that of a single build: source_pdf relative to the papers folder, not to a shard.
    single = {p.name: json.loads(p.read_text())["source_pdf"] for p in (built[0] / "stages" / "panels").glob("*.json")}
    merged = {p.name: json.loads(p.read_text())["source_pdf"] for p in (out / "stages" / "panels").glob("*.json")}
    assert merged == single and not (out / "shards").exists()


@pytest.mark.slow
def test_serve_llamafactory_backend_answers_openai_sdk(cluster, jobdir, tiny_dir, train_job, train_env, tmp_path):
    from openai import OpenAI

    endpoints = tmp_path / "endpoints"
    env = {**train_env, "SERVE_BACKEND": "llamafactory", "SERVE_HOST": "127.0.0.1", "ENDPOINT_DIR": str(endpoints)}
    job = cluster.sbatch([*CPU_JOB, SLURM / "serve.sh", "--recipe", TINY_RECIPE,
                          "--set", f"model_name_or_path={tiny_dir}", "--adapter", train_job["out"],
                          "--model-name", "fracto-tiny", "--out", tmp_path / "serve", "--health-timeout", "180"],
                         cwd=jobdir, env=env, wait=False)
    endpoint = endpoints / "fracto-tiny.json"
    deadline = time.monotonic() + 200
    while not endpoint.exists():
        state = cluster.scontrol_state(job)
        assert state in ("PENDING", "RUNNING", "CONFIGURING"), \
            (jobdir / "logs" / f"fracto-serve-{job}.out").read_text()
        assert time.monotonic() < deadline, "no endpoint file after 200 s"
        time.sleep(1)
    try:
        card = json.loads(endpoint.read_text())
        assert card == json.loads((tmp_path / "serve" / "endpoint.json").read_text())
        assert card["model"] == "fracto-tiny" and card["base_url"].startswith("http://127.0.0.1:")
        # the adapter and the local base folder, for eval's weights fingerprint (eval/identity.py)
        assert card["weights"] == [str(Path(train_job["out"]).resolve()), str(Path(tiny_dir).resolve())]
        client = OpenAI(base_url=card["base_url"], api_key="none", timeout=60)
        reply = client.chat.completions.create(model="fracto-tiny", max_tokens=8, temperature=0,
                                               messages=[{"role": "user", "content": "Name the features."}])
        assert isinstance(reply.choices[0].message.content, str)
        assert reply.usage.completion_tokens >= 1
        api_config = (tmp_path / "serve" / "api_config.yaml").read_text()
        assert f"adapter_name_or_path: {train_job['out']}" in api_config and "image_max_pixels: 65536" in api_config
    finally:
        run(["scancel", str(job)], env=cluster.env)
    assert cluster.state_of(job, timeout=60) in ("CANCELLED", "COMPLETED")
    deadline = time.monotonic() + 20
    while endpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not endpoint.exists(), "the endpoint file must go when the server stops"


@pytest.mark.slow
def test_srun_tasks_get_the_jobs_cpus(cluster, jobdir):
    """task/affinity binds each task to its CPUs: without SRUN_CPUS_PER_TASK an exact step gets 1 of the job's 2."""
    script = ("echo bare=$(srun --exact nproc); "
              f"source {SLURM}/common.sh cpus; trap - EXIT; "
              "echo common=$(srun --exact nproc) env=$(srun --exact printenv SRUN_CPUS_PER_TASK)")
    job = cluster.sbatch(["--nodes=1", "--cpus-per-task=2", "--mem=1G", "--gres=none", "-o", "logs/cpus-%j.out",
                          "--wrap", f"bash -c '{script}'"], cwd=jobdir)
    log = (jobdir / "logs" / f"cpus-{job}.out").read_text()
    assert cluster.state_of(job) == "COMPLETED", log
    assert "bare=1" in log, log  # Slurm 22.05: srun does not take the job's --cpus-per-task (binding enforced)
    assert "common=2 env=2" in log, log  # slurm/common.sh exports SRUN_CPUS_PER_TASK: every task gets both


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)]


@pytest.mark.slow
def test_two_node_zero3_matches_one_node_loss(cluster, jobdir, tiny_dir, built, train_env, tmp_path):
    """Two real Slurm nodes (two slurmd), one launcher each, c10d rendezvous, gloo, ZeRO-3: the same losses as one
    node with the same global batch (2 = 2 nodes x 1 process x accumulation 1 = 1 node x 1 x accumulation 2)."""
    env = {**train_env, "NPROC_PER_NODE": "1", "EFFECTIVE_BATCH": "2"}
    extra = {"max_steps": 3, "logging_steps": 1, "max_samples": 8,
             "deepspeed": REPO / "llamafactory_configs" / "deepspeed" / "ds_z3.json"}
    def two_nodes() -> tuple[int, str]:
        job = cluster.sbatch(["--nodes=2", "--gres=none", "--cpus-per-task=2", "--mem=4G", SLURM / "train.sh",
                              ZERO3_RECIPE, *tiny_overrides(tiny_dir, built[0] / "dataset", tmp_path / "two", **extra)],
                             cwd=jobdir, env=env, timeout=ZERO3_TIMEOUT)
        return job, (jobdir / "logs" / f"fracto-train-{job}.out").read_text()

    two, log = two_nodes()
    if cluster.state_of(two) != "COMPLETED" and teardown_abort(log, nodes=2):
        shutil.rmtree(tmp_path / "two")  # torch's exit path, not training: once more (the first log stays)
        two, log = two_nodes()
    assert cluster.state_of(two) == "COMPLETED", log[-3000:]
    lines = [dict(kv.split("=", 1) for kv in line.split()[1:]) for line in log.splitlines()
             if line.startswith("launcher:")]
    assert sorted((x["host"], x["NODE_RANK"]) for x in lines) == [(HOST, "0"), (f"{HOST}-2", "1")]
    assert "--rdzv-backend c10d" in log and "accumulation 1 (target from EFFECTIVE_BATCH)" in log
    one = cluster.sbatch(["--nodes=1", "--gres=none", "--cpus-per-task=2", "--mem=4G", SLURM / "train.sh",
                          ZERO3_RECIPE, *tiny_overrides(tiny_dir, built[0] / "dataset", tmp_path / "one", **extra)],
                         cwd=jobdir, env=env, timeout=ZERO3_TIMEOUT)
    one_log = (jobdir / "logs" / f"fracto-train-{one}.out").read_text()
    assert cluster.state_of(one) == "COMPLETED", one_log[-3000:]
    assert "accumulation 2 (target from EFFECTIVE_BATCH)" in one_log
    two_losses, one_losses = _losses(tmp_path / "two"), _losses(tmp_path / "one")
    assert len(two_losses) == len(one_losses) == 3
    assert two_losses == pytest.approx(one_losses, rel=1e-4), (two_losses, one_losses)
    assert json.loads((tmp_path / "two" / "run_card.json").read_text())["slurm"]["nodes"] == [HOST, f"{HOST}-2"]


@pytest.mark.slow
def test_preempted_job_saves_requeues_and_finishes(cluster, jobdir, tiny_dir, built, train_env, tmp_path):
    """USR1 to the batch shell (as --signal=B:USR1@600 sends it): save, requeue, resume, finish; one appended log."""
    out = tmp_path / "run"
    env = {**train_env, "NPROC_PER_NODE": "1"}
    job = cluster.sbatch([*CPU_JOB, SLURM / "train.sh", TINY_RECIPE,
                          *tiny_overrides(tiny_dir, built[0] / "dataset", out, max_steps=40, logging_steps=1)],
                         cwd=jobdir, env=env, wait=False)
    log_path = jobdir / "logs" / f"fracto-train-{job}.out"
    deadline = time.monotonic() + JOB_TIMEOUT
    while not ((out / "trainer_log.jsonl").exists() and len((out / "trainer_log.jsonl").read_text().splitlines()) >= 2):
        assert time.monotonic() < deadline and cluster.scontrol_state(job) in ("PENDING", "RUNNING", "CONFIGURING"), \
            log_path.read_text(errors="replace")[-3000:] if log_path.exists() else "no log"
        time.sleep(0.5)
    run(["scancel", "--batch", "--signal=USR1", str(job)], env=cluster.env, check=True)
    text = lambda: log_path.read_text(errors="replace")  # noqa: E731  (a progress bar may be half written)
    deadline = time.monotonic() + JOB_TIMEOUT
    while "requeueing job" not in text() or cluster.scontrol_state(job) != "PENDING":
        assert time.monotonic() < deadline, text()[-4000:]
        time.sleep(1)
    # Slurm holds a requeued job for AuthInfo's cred_expire + 1 s (its BeginTime; start.sh sets 10 s, the
    # default is 120 s) and then starts it at its next scheduling pass. The hold must not be cut short: the
    # slurmd refuses a batch credential issued within the second its job's credential was revoked ("Job
    # credential revoked", "Killing non-startable batch JobId": CI, 2026-12-07, after `scontrol update
    # StartTime=now` 60 ms after the requeue), and the job then ends FAILED instead of restarting. A job that
    # ends before training is done fails the wait at once (the requeue itself leaves a PENDING line in the
    # jobcomp file); every failed wait prints what Slurm says of the job and the daemons' logs.
    deadline = time.monotonic() + JOB_TIMEOUT
    while "train.sh: training done" not in text():
        assert time.monotonic() < deadline, text()[-3000:] + cluster.diagnose(job)
        assert cluster.state_of(job, timeout=0) in ("NOT_FINISHED", "PENDING", "REQUEUED"), text()[-3000:] + cluster.diagnose(job)
        time.sleep(2)
    assert cluster.state_of(job, timeout=60) == "COMPLETED"
    log = text()
    saved = int(re.search(r"train.sh: checkpoint saved at step (\d+); requeueing job", log).group(1))
    assert 2 <= saved < 40 and "[preemption] saving a checkpoint" in log
    assert "train.sh: job %d (restart 0)" % job in log and "train.sh: job %d (restart 1)" % job in log  # appended
    assert f"launch_plan: resuming from {out}/checkpoint-{saved}" in log
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 40
    assert not (out / ".preempt_requested").exists()


@pytest.mark.slow
def test_pipeline_chains_train_merge_serve_eval(cluster, jobdir, tiny_dir, built, train_env, tmp_path):
    """One command: train -> merge (afterok) -> serve (afterok) + eval (after serve starts; cancels the server)."""
    env = {**train_env, "NPROC_PER_NODE": "1", "SERVE_BACKEND": "llamafactory", "SERVE_HOST": "127.0.0.1",
           "ENDPOINT_DIR": str(tmp_path / "endpoints"), "TRAIN_SBATCH": " ".join(CPU_JOB),
           "MERGE_SBATCH": "--cpus-per-task=1 --mem=4G", "SERVE_SBATCH": " ".join(CPU_JOB),
           "EVAL_SBATCH": "--cpus-per-task=1 --mem=2G", **cluster.env}
    sets = [a.replace("--set=", "") for a in tiny_overrides(tiny_dir, built[0] / "dataset", tmp_path / "run")]
    done = run(["bash", SLURM / "pipeline.sh", "--recipe", TINY_RECIPE, "--model-name", "fracto-pipe",
                *[x for kv in sets for x in ("--set", kv)], "--wait", "200", "--",
                "--benchmark", built[0] / "dataset", "--limit", "2", "--out", tmp_path / "eval", "--quiet"],
               env=env, cwd=jobdir, check=True)
    ids = re.search(r"train (\d+) -> merge (\d+) -> serve (\d+) \+ eval (\d+)", done.stdout)
    assert ids, done.stdout + done.stderr
    train, merge, serve, evaluation = map(int, ids.groups())
    assert cluster.state_of(evaluation, timeout=3 * JOB_TIMEOUT) == "COMPLETED", \
        "".join(p.read_text() for p in sorted((jobdir / "logs").glob("fracto-*")) if str(evaluation) in p.name)
    assert cluster.state_of(train) == "COMPLETED" and cluster.state_of(merge) == "COMPLETED"
    assert cluster.state_of(serve, timeout=60) == "CANCELLED"  # eval.sh --stop-job ended the server
    assert (tmp_path / "run-merged" / "config.json").is_file()
    assert len((tmp_path / "eval" / "samples.jsonl").read_text().splitlines()) == 2


# --- fast: command lines, help texts, argument errors ------------------------------------------------------

def test_vllm_command_for_adapter(tmp_path, monkeypatch):
    adapter = tmp_path / "qwen-fracto-lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 16}))
    env = {**os.environ, "SLURM_GPUS_ON_NODE": "4", "VLLM_VENV": "/opt/vllm"}
    done = run(["bash", SLURM / "serve.sh", "--recipe", TINY_RECIPE, "--set", "model_name_or_path=/models/Qwen3-VL-32B-Instruct",
                "--adapter", adapter, "--port", "8123", "--dry-run"], env=env, check=True)
    line = done.stdout.splitlines()[1]
    assert shlex.split(line) == [
        "/opt/vllm/bin/vllm", "serve", "/models/Qwen3-VL-32B-Instruct", "--host", "0.0.0.0", "--port", "8123",
        "--tensor-parallel-size", "4", "--max-model-len", "1024", "--limit-mm-per-prompt.image", "1",
        "--limit-mm-per-prompt.video", "0",
        "--mm-processor-kwargs", '{"size":{"longest_edge":82944,"shortest_edge":65536}}', "--dtype", "auto",
        "--served-model-name", "Qwen3-VL-32B-Instruct", "--enable-lora", "--lora-modules",
        f"qwen-fracto-lora={adapter}", "--max-lora-rank", str(DEFAULT_MAX_LORA_RANK)]


def test_vllm_args_merged_and_rank_rounding(tmp_path):
    recipe = load_recipe(TINY_RECIPE, {"model_name_or_path": "/m/base", "bf16": True, "image_max_pixels": 589824,
                                       "lora_rank": 100, "cutoff_len": 2048})
    args = serving.vllm_args(recipe, merged=Path("/m/merged"), tensor_parallel_size=2, port=9000)
    assert args[:3] == ["vllm", "serve", "/m/merged"] and "--enable-lora" not in args
    assert args[args.index("--served-model-name") + 1] == "merged"
    assert args[args.index("--dtype") + 1] == "bfloat16" and args[args.index("--max-model-len") + 1] == "2048"
    assert json.loads(args[args.index("--mm-processor-kwargs") + 1]) == {"size": {"longest_edge": 640000, "shortest_edge": 65536}}
    assert serving.max_lora_rank_for(recipe) == 128  # rank 100 -> the next rank vLLM accepts
    assert serving.max_lora_rank_for({"lora_rank": 8}) == DEFAULT_MAX_LORA_RANK
    with pytest.raises(serving.ServingError, match="merge the adapter"):
        serving.max_lora_rank_for({"lora_rank": 1024})


@pytest.mark.parametrize("script, needed", [("train.sh", "missing the recipe"), ("build.sh", "missing --papers"),
                                            ("serve.sh", "missing --recipe"), ("merge.sh", "missing --recipe"),
                                            ("eval.sh", "missing --model"), ("pipeline.sh", "missing --recipe")])
def test_scripts_have_help_and_refuse_missing_arguments(script, needed):
    helped = run(["bash", SLURM / script, "--help"], check=True)
    assert "Usage:" in helped.stdout and "#SBATCH" not in helped.stdout
    done = run(["bash", SLURM / script])
    assert done.returncode == 2 and needed in done.stderr


def test_eval_refuses_a_missing_endpoint(tmp_path):
    env = {**os.environ, "ENDPOINT_DIR": str(tmp_path)}
    done = run(["bash", SLURM / "eval.sh", "--model", "nothing-served"], env=env)
    assert done.returncode == 2 and f"no endpoint file {tmp_path}/nothing-served.json" in done.stderr


def test_run_card_check_data_names_missing_files(tmp_path, built):
    ok = run([sys.executable, "-m", "training.run_card", "--recipe", TINY_RECIPE,
              "--set", f"dataset_dir={built[0] / 'dataset'}", "--check-data"])
    assert ok.returncode == 0, ok.stderr
    bad = run([sys.executable, "-m", "training.run_card", "--recipe", TINY_RECIPE,
               "--set", f"dataset_dir={built[0] / 'dataset'}", "--set", "dataset=fracto_nope", "--check-data"])
    assert bad.returncode == 2 and "fracto_nope" in bad.stderr and "fracto_train" in bad.stderr
