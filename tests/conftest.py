"""Shared fixtures: a sample corpus and one full build of it, the tiny Qwen3-VL, and a real local server serving it
(`tiny_api_server`: `llamafactory-cli api`, used by the labeller and the eval harness tests), made once per session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import free_port

# Everything runs offline: no hub look-ups, caches inside the test area.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def code_digest_folder(tmp_path_factory) -> Path:
    """The code digests every build shares (stage_cache.shared_digest_folder) kept inside the test area, not in
    the user's cache; subprocess builds inherit it."""
    folder = tmp_path_factory.mktemp("code_digests")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRACTOVLM_CODE_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    """A generated 8-paper sample corpus with ground truth (papers/, manual/, ground_truth.json)."""
    from dataset_builders.sample_corpus import generate_corpus

    dest = tmp_path_factory.mktemp("corpus")
    generate_corpus(dest, n_papers=8, seed=3)
    return dest


@pytest.fixture(scope="session")
def built(corpus_dir, tmp_path_factory):
    """One uninterrupted build of corpus_dir with 2 workers: (output folder, stage results).

    --min-split-papers 1: eight papers are few, and the ratios alone can leave val empty (issue 27)."""
    from dataset_builders.build import build
    from dataset_builders.config import BuildConfig

    out = tmp_path_factory.mktemp("build") / "out"
    config = BuildConfig(papers=corpus_dir / "papers", manual=corpus_dir / "manual", out=out, workers=2, seed=3,
                         min_split_papers=1)
    results = build(config, progress=False)
    return out, results


@pytest.fixture(scope="session")
def hf_env(tmp_path_factory):
    """Offline switches and every HF cache inside the session's tmp dir (set before transformers loads)."""
    home = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            mp.setenv(name, "1")
        mp.setenv("HF_HOME", str(home))
        mp.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
        mp.setenv("MPLCONFIGDIR", str(home / "matplotlib"))
        mp.setenv("TOKENIZERS_PARALLELISM", "false")
        yield home


@pytest.fixture(scope="session")
def tiny_dir(hf_env, tmp_path_factory) -> Path:
    """The tiny random Qwen3-VL (seed 0), built once per session."""
    from tiny_qwen3vl import build_tiny_qwen3vl

    return build_tiny_qwen3vl(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def train_env(hf_env, tmp_path_factory) -> dict[str, str]:
    """Environment for subprocesses that run LlamaFactory / DeepSpeed on the CPU (DESIGN §6).

    TORCH_EXTENSIONS_DIR is shared by the whole session so DeepSpeed JIT-compiles its op once.
    """
    env = dict(os.environ)
    env.update({
        "TORCH_EXTENSIONS_DIR": str(tmp_path_factory.mktemp("torch_extensions")),
        "API_HOST": "127.0.0.1",
        "DISABLE_VERSION_CHECK": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "WANDB_DISABLED": "true",
    })
    return env


@pytest.fixture(scope="session")
def tiny_api_server(tiny_dir, train_env, tmp_path_factory):
    """`llamafactory-cli api` serving the tiny model on 127.0.0.1:<free port>; yields (base_url, model name).

    Session-scoped: started (~10-20 s) the first time a test asks for it, killed at the end of the session.
    """
    import urllib.request

    work = tmp_path_factory.mktemp("lf_api")
    cfg = work / "api.yaml"
    cfg.write_text(f"model_name_or_path: {tiny_dir}\ntemplate: qwen3_vl_nothink\ninfer_backend: huggingface\n"
                   "trust_remote_code: true\n")
    port = free_port()
    env = dict(train_env, API_HOST="127.0.0.1", API_PORT=str(port), API_MODEL_NAME="tiny-qwen3vl")
    cli = Path(sys.executable).with_name("llamafactory-cli")
    log = open(work / "server.log", "wb")
    proc = subprocess.Popen([str(cli), "api", str(cfg)], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError("llamafactory-cli api exited:\n" + (work / "server.log").read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llamafactory-cli api not ready after 180 s:\n"
                                   + (work / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield base, "tiny-qwen3vl"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def built_qa(built, tmp_path_factory):
    """`built` plus the qa stage (templates, offline): a hard-linked copy of its output, then `--from-stage qa --qa`.

    The dataset folder holds both datasets (fracto_* and fracto_qa_*), as `python -m dataset_builders.build --qa`.
    """
    import shutil

    from dataset_builders.build import build
    from dataset_builders.config import BuildConfig

    src, _ = built
    out = tmp_path_factory.mktemp("build_qa") / "out"
    shutil.copytree(src, out, copy_function=os.link)
    stored = BuildConfig.model_validate_json((src / "build_config.json").read_text())
    config = stored.model_copy(update={"out": out, "qa": True})
    results = build(config, from_stage="qa", to_stage="qa", progress=False)
    return out, results
