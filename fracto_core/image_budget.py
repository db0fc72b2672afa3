"""How many image tokens Qwen3-VL spends on one image under LlamaFactory's pixel budget.

Two resizes happen before the vision tower sees an image:

1. LlamaFactory (``mm_plugin.BasePlugin._preprocess_image`` + ``Qwen2VLPlugin``) scales an image whose
   w*h exceeds ``image_max_pixels`` down to about that budget (or one below ``image_min_pixels`` up),
   truncating each side to an int; then it pads a side shorter than 28 px and squeezes aspect ratios
   beyond 200:1 to 180:1.
2. The Qwen3-VL image processor (``Qwen2VLImageProcessor`` with patch 16, merge 2) applies
   ``smart_resize``: both sides rounded to multiples of 32 (= patch 16 x merge 2) while the area stays
   within its own [shortest_edge, longest_edge] pixel range (65,536 .. 16,777,216 for Qwen3-VL).

Every 32x32 block becomes one token: tokens = (H/32) * (W/32).
Example: a 1024x768 micrograph with image_max_pixels=589,824 (768^2) -> 886x665 -> 896x672 -> 28*21 = 588.

Usage:
    from fracto_core.image_budget import image_tokens
    image_tokens(1024, 768, 589_824, 1024)   # 588
"""

from __future__ import annotations

import math

# The image pixel budget: ONE constant, read by the builder (--image-max-pixels default), the recipe check,
# the serving flags and the evaluation. 589,824 px = 768 x 768 -> at most 576 image tokens of Qwen3-VL.
IMAGE_MAX_PIXELS = 589_824
IMAGE_MIN_PIXELS = 1_024

PATCH_SIZE = 16
MERGE_SIZE = 2
FACTOR = PATCH_SIZE * MERGE_SIZE  # 32 pixels per token side
PROCESSOR_MIN_PIXELS = 65_536  # Qwen3-VL preprocessor_config.json size.shortest_edge
PROCESSOR_MAX_PIXELS = 16_777_216  # size.longest_edge
VISION_MARKER_TOKENS = 2  # <|vision_start|> and <|vision_end|> around the image pads


def llamafactory_resize(width: int, height: int, image_max_pixels: int, image_min_pixels: int) -> tuple[int, int]:
    """The (width, height) LlamaFactory's Qwen2-VL/Qwen3-VL plugin hands to the processor."""
    if width * height > image_max_pixels:
        factor = math.sqrt(image_max_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    if width * height < image_min_pixels:
        factor = math.sqrt(image_min_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    if min(width, height) < 28:
        width, height = max(width, 28), max(height, 28)
    if width / height > 200:
        width = height * 180
    if height / width > 200:
        height = width * 180
    return width, height


def smart_resize(height: int, width: int, factor: int = FACTOR, min_pixels: int = PROCESSOR_MIN_PIXELS,
                 max_pixels: int = PROCESSOR_MAX_PIXELS) -> tuple[int, int]:
    """(height, width) after the Qwen-VL processor's resize: multiples of `factor`, area within bounds."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.1f} exceeds 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        shrink = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / shrink / factor) * factor)
        w_bar = max(factor, math.floor(width / shrink / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        grow = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * grow / factor) * factor
        w_bar = math.ceil(width * grow / factor) * factor
    return h_bar, w_bar


def image_tokens(width: int, height: int, image_max_pixels: int, image_min_pixels: int) -> int:
    """Image-pad tokens Qwen3-VL uses for a width x height image (vision markers not included)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    w, h = llamafactory_resize(width, height, image_max_pixels, image_min_pixels)
    h_bar, w_bar = smart_resize(h, w)
    return (h_bar // FACTOR) * (w_bar // FACTOR)
