"""One pixel budget: the served Qwen3-VL processor, built with exactly serve.sh's --mm-processor-kwargs, gives the
image the evaluation sends the same number of image tokens as LlamaFactory's own mm_plugin gave it in training."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from fracto_core.image_budget import image_tokens
from fracto_core.vlm_api.payloads import ImageInput
from training import serving

BUDGET = 589_824  # the builder's / 32B recipe's image_max_pixels
MIN_PIXELS = 1_024
# Micrograph-like sizes (w, h): 4:3 and 3:4 SEM frames, square, wide panels up to 4:1, and a small crop.
SIZES = [(2048, 1536), (1024, 768), (1536, 2048), (2000, 2000), (1280, 960), (3000, 1000), (4096, 1024), (901, 677),
         (300, 200), (64, 80)]


@pytest.fixture(scope="module")
def tiny_processor(tiny_dir):
    from transformers import AutoProcessor

    return lambda **kw: AutoProcessor.from_pretrained(tiny_dir, **kw)


def grid_tokens(grid_thw) -> int:
    t, h, w = (int(x) for x in grid_thw)
    return t * h * w // 4  # merge 2x2


def training_tokens(processor, image: Image.Image, max_pixels: int) -> int:
    """Image tokens in training: LlamaFactory's Qwen3-VL plugin (resize to image_max_pixels) + the processor."""
    from llamafactory.data.mm_plugin import get_mm_plugin

    plugin = get_mm_plugin("qwen3_vl", image_token="<|image_pad|>", video_token="<|video_pad|>")
    processor.image_max_pixels, processor.image_min_pixels = max_pixels, MIN_PIXELS  # as LlamaFactory's patcher
    inputs = plugin._get_mm_inputs([image], [], [], processor)
    return grid_tokens(inputs["image_grid_thw"][0])


def served_tokens(processor, image: Image.Image, kwargs: dict) -> int:
    """Image tokens in serving: the image processor called with the --mm-processor-kwargs (as vLLM passes them)."""
    out = processor.image_processor(images=[image], return_tensors="pt", **kwargs)
    return grid_tokens(out["image_grid_thw"][0])


def sent_image(image: Image.Image, max_pixels: int) -> Image.Image:
    """The image eval.run sends (fracto_core.vlm_api.payloads: LlamaFactory's resize, JPEG q95)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    mime, data = ImageInput.from_bytes(buf.getvalue(), max_pixels, MIN_PIXELS).encode()
    return Image.open(io.BytesIO(data)).convert("RGB")


def test_serve_kwargs_use_the_keys_qwen3vl_reads():
    kwargs = serving.processor_kwargs({"image_max_pixels": BUDGET})
    assert kwargs == {"size": {"longest_edge": 640_000, "shortest_edge": 65_536}}
    args = serving.vllm_args({"model_name_or_path": "/m/base", "image_max_pixels": BUDGET}, merged=None)
    assert json.loads(args[args.index("--mm-processor-kwargs") + 1]) == kwargs
    assert args[args.index("--limit-mm-per-prompt.image") + 1] == "1"
    assert args[args.index("--limit-mm-per-prompt.video") + 1] == "0"


@pytest.mark.slow  # builds the tiny processor (~10 s once per session) and runs 20 images through it
def test_served_processor_gives_the_training_image_tokens(tiny_processor):
    kwargs = serving.processor_kwargs({"image_max_pixels": BUDGET})
    trained = tiny_processor()  # as LlamaFactory loads it for training: the model's own size
    served = tiny_processor(**kwargs)  # as vLLM builds it with --mm-processor-kwargs
    plain = tiny_processor()
    for w, h in SIZES:
        image = Image.new("RGB", (w, h), (90, 120, 150))
        expected = training_tokens(trained, image, BUDGET)
        assert expected == image_tokens(w, h, BUDGET, MIN_PIXELS), (w, h)  # our arithmetic = LlamaFactory's
        sent = sent_image(image, BUDGET)
        # the image the evaluation sends gets exactly the training tokens, kwargs given at load or at call time
        assert served_tokens(served, sent, {}) == expected, (w, h)
        assert served_tokens(plain, sent, kwargs) == expected, (w, h)
        # a full-resolution image from another client is capped near the budget (not left at 16.7 M px)
        raw = served_tokens(served, image, {})
        assert raw <= 640_000 // 1024 and abs(raw - expected) <= 0.1 * expected + 1, (w, h, raw, expected)
    big = Image.new("RGB", (2048, 1536), 0)
    assert served_tokens(served, big, {}) == training_tokens(trained, big, BUDGET) == 588  # 896x672 / 32^2
    # the old kwargs: max_pixels alone is ignored at call time, the 16.7 M px model cap applies
    assert served_tokens(plain, big, {"max_pixels": BUDGET}) == 2048 * 1536 // 1024
