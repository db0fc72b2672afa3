"""Eval-harness test helpers: a small labelled benchmark of random images, scripted replies keyed by image,
and a RunConfig pointed at a scripted server (used by test_eval_run, test_eval_identity, test_eval_scoring)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from eval.benchmark import load_benchmark
from eval.run import RunConfig
from fracto_core.image_budget import IMAGE_MAX_PIXELS
from fracto_core.vlm_api.payloads import ImageInput
from support.scripted_server import Reply


def make_benchmark(folder: Path, truths: dict[str, list[str]], seed: int = 0) -> Path:
    """A folder + labels.csv benchmark: one distinct random greyscale image per item (64x80 PNG)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["item_id", "file", "features"])
        for item_id, feats in truths.items():
            Image.fromarray(rng.integers(0, 255, (64, 80), dtype=np.uint8)).save(folder / f"{item_id}.png")
            writer.writerow([item_id, f"{item_id}.png", ";".join(feats)])
    return folder / "labels.csv"


def image_keys(csv_path: Path, max_pixels: int = IMAGE_MAX_PIXELS) -> dict[str, str]:
    """{scripted-server key: item_id}: the key is the hash of the request's image data URL."""
    bench = load_benchmark(csv_path)
    return {hashlib.sha256(ImageInput.from_path(bench.image_path(it), max_pixels).data_url().encode())
            .hexdigest()[:16]: it.item_id for it in bench.items}


def item_responder(keys: dict[str, str], script: dict[str, list[Reply]]):
    """A ScriptedServer responder: the item's n-th scripted reply (the last one repeats)."""
    def respond(body, key, n):
        replies = script[keys[key]]
        return replies[min(n, len(replies) - 1)]
    return respond


def features(*names: str) -> str:
    return json.dumps({"features": list(names)})


def config(csv_path: Path, out: Path, base_url: str, **kw) -> RunConfig:
    values = dict(model="scripted-vlm", benchmark=csv_path, out=out, base_url=base_url, concurrency=4,
                  timeout_s=5.0, max_attempts=3, backoff_base_s=0.05, progress=False)
    values.update(kw)
    return RunConfig(**values)
