"""Shared fixtures: a sample corpus and one full build of it, made once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Everything runs offline: no hub look-ups, caches inside the test area.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    """A generated 8-paper sample corpus with ground truth (papers/, manual/, ground_truth.json)."""
    from dataset_builders.sample_corpus import generate_corpus

    dest = tmp_path_factory.mktemp("corpus")
    generate_corpus(dest, n_papers=8, seed=3)
    return dest


@pytest.fixture(scope="session")
def built(corpus_dir, tmp_path_factory):
    """One uninterrupted build of corpus_dir with 2 workers: (output folder, stage results)."""
    from dataset_builders.build import build
    from dataset_builders.config import BuildConfig

    out = tmp_path_factory.mktemp("build") / "out"
    config = BuildConfig(papers=corpus_dir / "papers", manual=corpus_dir / "manual", out=out, workers=2, seed=3)
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
