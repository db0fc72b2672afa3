"""The exported dataset as LlamaFactory itself reads it, and image-token counts as LlamaFactory + transformers compute them.

No model is needed: get_dataset_list (parser.py) reads dataset_info.json, _load_single_dataset
(loader.py) loads each JSON file and align_dataset / SharegptDatasetConverter (converter.py) turn samples
into _prompt/_response/_images records, exactly as `llamafactory-cli train` does before tokenising.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
from PIL import Image

from dataset_builders import augment
from dataset_builders import export as sharegpt
from dataset_builders import split as splits
from fracto_core.answer_format import format_answer, instruction_prompt
from dataset_builders.config import BuildConfig
from fracto_core.image_budget import (
    PROCESSOR_MAX_PIXELS,
    PROCESSOR_MIN_PIXELS,
    image_tokens,
    llamafactory_resize,
    smart_resize,
)
from dataset_builders.perceptual_hash import image_phash
from dataset_builders.records import Item
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import write_jsonl_atomic

FEATURES = [["equiaxed dimples"], ["fatigue striations", "beach marks"], ["fish-eye"], []]


def export(tmp_path: Path) -> tuple[StagePaths, BuildConfig]:
    """A small real build: 10 papers x 2 panels + 2 manual images -> split -> augment -> export."""
    paths = StagePaths(tmp_path / "build")
    items = []
    for n in range(22):
        manual = n >= 20
        item_id = f"manual-{n}" if manual else f"p{n // 2:02d}-f{n % 2}"
        rel = f"stages/panels/{item_id}.jpg"
        paths.abs(rel).parent.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(np.random.default_rng(n).integers(0, 256, (50 + 3 * n, 70, 3), dtype=np.uint8))
        img.save(paths.abs(rel), quality=90)
        items.append(Item(item_id=item_id, image=rel, width=img.width, height=img.height, phash=image_phash(img),
                          paper_ids=["manual:lab"] if manual else [f"p{n // 2:02d}"],
                          features=["crazing"] if manual else FEATURES[n % len(FEATURES)],
                          label_origin="manual" if manual else "caption_rules"))
    write_jsonl_atomic(paths.items, items)
    config = BuildConfig(out=paths.out, workers=1, val_ratio=0.2, test_ratio=0.2, arbitrary_rotations=1)
    splits.run(paths, config, progress=False)
    augment.run(paths, config, progress=False)
    sharegpt.run(paths, config, progress=False)
    return paths, config


def test_llamafactory_loads_every_exported_file(tmp_path: Path) -> None:
    from llamafactory.data.loader import _load_single_dataset
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments, ModelArguments, TrainingArguments

    paths, _config = export(tmp_path)
    dataset_dir = str(paths.dataset)
    info = json.loads((paths.dataset / "dataset_info.json").read_text())
    names = sorted(info)
    assert len(names) == 5
    model_args = ModelArguments(model_name_or_path="unused-no-model-is-loaded", cache_dir=str(tmp_path / "hf_cache"))
    data_args = DataArguments(dataset_dir=dataset_dir, dataset=",".join(names))
    training_args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none")

    attrs = get_dataset_list(names, dataset_dir)
    for name, attr in zip(names, attrs):
        assert attr.load_from == "file" and attr.formatting == "sharegpt"
        assert (attr.messages, attr.images, attr.role_tag, attr.user_tag) == ("messages", "images", "role", "user")
        ours = json.loads((paths.dataset / info[name]["file_name"]).read_text())
        converted = _load_single_dataset(attr, model_args, data_args, training_args)
        assert len(converted) == len(ours) > 0
        for sample, record in zip(ours, converted):
            assert record["_prompt"] == [{"role": "user", "content": "<image>" + instruction_prompt()}]
            answer = sample["messages"][1]["content"]
            assert record["_response"] == [{"role": "assistant", "content": answer}]
            assert answer.startswith('{"features": [')
            (image,) = record["_images"]
            assert os.path.isabs(image) and os.path.isfile(image)
            assert image == os.path.join(dataset_dir, sample["images"][0])  # resolved against media_dir
    # labels survive the round trip: the manual crazing items are in train with their answer
    train = _load_single_dataset(attrs[names.index("fracto_train")], model_args, data_args, training_args)
    assert sum(r["_response"][0]["content"] == format_answer(["crazing"]) for r in train) >= 2


# --- image tokens against LlamaFactory's and transformers' own code --------------------------------

def _sizes(n: int, seed: int = 0) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    fixed = [(1, 1), (27, 500), (32, 32), (64, 64), (100, 3000), (3000, 100), (1024, 768), (768, 1024),
             (4000, 3000), (6000, 40), (16, 5000), (255, 257), (1920, 1080), (8192, 8192), (33, 31)]
    return fixed + [(rng.randint(1, 6000), rng.randint(1, 6000)) for _ in range(n)]


def test_smart_resize_matches_transformers() -> None:
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import (
        smart_resize as hf_smart_resize,
    )

    for w, h in _sizes(3000):
        if max(w, h) / min(w, h) > 200:
            with pytest.raises(ValueError):
                smart_resize(h, w)
            continue
        for lo, hi in ((PROCESSOR_MIN_PIXELS, PROCESSOR_MAX_PIXELS), (56 * 56, 28 * 28 * 1280)):
            assert smart_resize(h, w, 32, lo, hi) == hf_smart_resize(h, w, factor=32, min_pixels=lo, max_pixels=hi)


@pytest.mark.parametrize("budget", [(589_824, 1024), (50_000, 1024), (262_144, 65_536), (16_384, 4096)])
def test_image_tokens_match_llamafactory_plugin_and_transformers(budget: tuple[int, int]) -> None:
    from llamafactory.data.mm_plugin import get_mm_plugin
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import (
        smart_resize as hf_smart_resize,
    )

    max_px, min_px = budget
    plugin = get_mm_plugin(name="qwen3_vl", image_token="<|image_pad|>", video_token="<|video_pad|>")
    for w, h in _sizes(60, seed=max_px):
        if w * h > 40_000_000:
            continue
        image = plugin._preprocess_image(Image.new("L", (w, h)), image_max_pixels=max_px, image_min_pixels=min_px)
        assert llamafactory_resize(w, h, max_px, min_px) == image.size, (w, h)
        rh, rw = hf_smart_resize(image.height, image.width, factor=32, min_pixels=PROCESSOR_MIN_PIXELS,
                                 max_pixels=PROCESSOR_MAX_PIXELS)
        assert image_tokens(w, h, max_px, min_px) == (rh // 32) * (rw // 32), (w, h)


def test_image_tokens_match_qwen3_vl_image_processor() -> None:
    """The processor itself (Qwen3-VL settings: patch 16, merge 2) agrees on the grid it produces."""
    from llamafactory.data.mm_plugin import get_mm_plugin
    from transformers import Qwen2VLImageProcessor

    processor = Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2,
                                      size={"shortest_edge": PROCESSOR_MIN_PIXELS,
                                            "longest_edge": PROCESSOR_MAX_PIXELS})
    plugin = get_mm_plugin(name="qwen3_vl", image_token="<|image_pad|>", video_token="<|video_pad|>")
    for w, h in [(1024, 768), (300, 200), (90, 1500), (2000, 1999), (20, 20)]:
        image = plugin._preprocess_image(Image.new("RGB", (w, h)), image_max_pixels=589_824, image_min_pixels=1024)
        grid = processor(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()
        assert image_tokens(w, h, 589_824, 1024) == grid[0] * grid[1] * grid[2] // 4, (w, h, grid)
    assert image_tokens(1024, 768, 589_824, 1024) == 588  # the worked example in image_tokens' docstring
