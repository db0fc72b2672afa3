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
