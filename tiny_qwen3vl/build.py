"""Build a tiny, randomly initialised, seeded Qwen3-VL model folder for CPU tests and smoke runs.

The folder has the same shape as a real Qwen3-VL-*-Instruct checkpoint (config, safetensors weights,
byte-level BPE tokenizer with the Qwen special tokens, Qwen3VLProcessor with image and video processors,
chat template), so transformers' Auto classes and LlamaFactory (`template: qwen3_vl_nothink`) load it
like the real thing -- but it has ~0.33 M parameters and is built in under a second (plus ~7 s to
import transformers). Nothing here touches the hub: every part is built from local code.
Facts that make it load with transformers 5.6: ../../shared/DESIGN.md §6 ("Tiny Qwen3-VL fixture").

Usage:
    from tiny_qwen3vl import build_tiny_qwen3vl
    model_dir = build_tiny_qwen3vl(Path("/tmp/tiny-qwen3vl"), seed=0)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)

from fracto_core.answer_format import format_answer, instruction_prompt
from fracto_core.vocabulary import FEATURES, canonical_names

# Qwen's pre-tokenizer split (the same regex as Qwen2/Qwen3 tokenizers), before byte-level mapping.
QWEN_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Special tokens in Qwen's id order (they follow the BPE vocabulary, as in the real tokenizer).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Added (not special) tokens: decoded like text, never split.
ADDED_TOKENS: tuple[str, ...] = ("<tool_call>", "</tool_call>", "<think>", "</think>")

BPE_VOCAB_SIZE = 1024  # bytes (256) + merges; enough that our prompts tokenise to ~1 token per word

# Qwen3-VL-Instruct's image processor settings: 16 px patches merged 2x2 → one token per 32x32 px;
# min 65,536 px (256x256), max 16,777,216 px (4096x4096). Kept as in the real model so token counts
# match; callers (LlamaFactory) cap the size with image_max_pixels anyway.
IMAGE_MIN_PIXELS = 65536
IMAGE_MAX_PIXELS = 16777216
VIDEO_MIN_PIXELS = 4096
VIDEO_MAX_PIXELS = 25165824
PATCH_SIZE = 16
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
QWEN_IMAGE_MEAN_STD = [0.5, 0.5, 0.5]

# Qwen3-VL-Instruct-style chat template (written for this fixture): string or list-of-parts content,
# images/videos as <|vision_start|><|image_pad|><|vision_end|> in place, no <think> blocks.
# Every piece of output is a `{{- '...' }}` literal so trim_blocks/lstrip_blocks never eat a "\n".
CHAT_TEMPLATE = r"""{%- set image_count = namespace(value=0) -%}
{%- set video_count = namespace(value=0) -%}
{%- macro render_content(content) -%}
{%- if content is string -%}
{{- content -}}
{%- else -%}
{%- for part in content -%}
{%- if part.type == 'image' or 'image' in part or 'image_url' in part -%}
{%- set image_count.value = image_count.value + 1 -%}
{%- if add_vision_id -%}{{- 'Picture ' ~ image_count.value ~ ': ' -}}{%- endif -%}
{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
{%- elif part.type == 'video' or 'video' in part -%}
{%- set video_count.value = video_count.value + 1 -%}
{%- if add_vision_id -%}{{- 'Video ' ~ video_count.value ~ ': ' -}}{%- endif -%}
{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
{%- elif 'text' in part -%}
{{- part.text -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{%- for message in messages -%}
{%- if message.role in ['system', 'user', 'assistant'] -%}
{{- '<|im_start|>' ~ message.role ~ '\n' -}}
{{- render_content(message.content) -}}
{{- '<|im_end|>\n' -}}
{%- elif message.role == 'tool' -%}
{{- '<|im_start|>user\n<tool_response>\n' -}}
{{- render_content(message.content) -}}
{{- '\n</tool_response><|im_end|>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%}"""

README = """# Tiny random Qwen3-VL (test fixture)

Built by `python -m tiny_qwen3vl --out DIR --seed {seed}` (FractoVLM, `tiny_qwen3vl/build.py`).
**Randomly initialised — not a trained model; its outputs are noise.** It exists so that CPU tests,
the CPU smoke run and the LlamaFactory data pipeline exercise the real Qwen3-VL code paths
(`Qwen3VLForConditionalGeneration`, `Qwen3VLProcessor`, `template: qwen3_vl_nothink`) offline.

- Parameters: {n_params:,} (float32, safetensors), seed {seed} — same seed, same weights.
- Text: hidden 64, 2 layers, 4 heads / 2 KV heads, head_dim 16, MLP 128, interleaved MRoPE [4, 2, 2].
- Vision: depth 2, hidden 32, 2 heads, patch 16, spatial merge 2, temporal patch 2, deepstack layer [1].
- Tokenizer: {vocab_size}-token byte-level BPE trained on the fractography vocabulary and answer
  format, Qwen's pre-tokenizer regex and Qwen's special tokens; eos `<|im_end|>`, pad `<|endoftext|>`.
- Image processor as Qwen3-VL-Instruct: one `<|image_pad|>` per 32x32 px, min 65,536 px, max 16,777,216 px.
- generation_config: greedy (`do_sample=False`) so outputs are reproducible in tests.
"""


def training_text() -> list[str]:
    """The small corpus the BPE is trained on: our prompt, answers and the vocabulary's words."""
    names = canonical_names()
    lines = [instruction_prompt(), format_answer([]), format_answer(names)]
    lines += [format_answer([name]) for name in names]
    lines += [format_answer(names[i:i + 3]) for i in range(0, len(names), 3)]
    for feat in FEATURES:
        lines.append(f"{feat.name}: {feat.definition}")
        lines.append(", ".join(feat.synonyms))
        lines.append(" ".join(feat.mechanisms))
    lines += [
        "The fracture surface shows fatigue striations and secondary cracks near the crack origin.",
        "SEM micrograph of the fracture surface of a steel specimen after tensile testing.",
        "Figure 3. Fractographs of the specimens: (a) overview, (b) detail of the initiation site.",
        "You are a helpful assistant. What is shown in this image? Answer with JSON only.",
        "The quick brown fox jumps over the lazy dog. 0123456789 {}[]\"':;,.!?()-_/\\<>=+*&^%$#@~`|",
    ]
    return lines


def train_bpe(texts: list[str], vocab_size: int = BPE_VOCAB_SIZE) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE with Qwen's pre-tokenizer; returns (vocab, merges) for Qwen2Tokenizer.

    Every one of the 256 byte symbols is in the vocabulary, so any text (any language, any byte)
    tokenises without an unknown token, as with the real Qwen tokenizer.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    state = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return dict(state["vocab"]), merges


def build_tokenizer() -> Qwen2Tokenizer:
    """The fast Qwen2Tokenizer over the trained BPE, with Qwen's special and added tokens and template."""
    vocab, merges = train_bpe(training_text())
    # Qwen2Tokenizer appends its named special tokens on init: start with <|endoftext|> only (eos =
    # pad), add the others in Qwen's id order, then make <|im_end|> the eos as in Qwen3-VL-Instruct.
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=262144,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        errors="replace",
    )
    tokenizer.add_special_tokens({"extra_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.add_tokens(list(ADDED_TOKENS), special_tokens=False)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_processor(tokenizer: Qwen2Tokenizer) -> Qwen3VLProcessor:
    """Qwen3VLProcessor with Qwen3-VL-Instruct's image and video processor settings."""
    common = dict(
        patch_size=PATCH_SIZE,
        temporal_patch_size=TEMPORAL_PATCH_SIZE,
        merge_size=MERGE_SIZE,
        image_mean=QWEN_IMAGE_MEAN_STD,
        image_std=QWEN_IMAGE_MEAN_STD,
    )
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": IMAGE_MIN_PIXELS, "longest_edge": IMAGE_MAX_PIXELS}, **common)
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": VIDEO_MIN_PIXELS, "longest_edge": VIDEO_MAX_PIXELS}, **common)
    return Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                            video_processor=video_processor, chat_template=CHAT_TEMPLATE)


def build_config(tokenizer: Qwen2Tokenizer) -> Qwen3VLConfig:
    """The tiny Qwen3VLConfig; special-token ids come from the tokenizer so the two always agree."""
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS}
    text_config = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_act="silu",
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        # mrope_section sums to head_dim / 2 = 8 (temporal, height, width rotary pairs).
        rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [4, 2, 2],
                         "mrope_interleaved": True},
        attention_bias=False,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    vision_config = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        in_channels=3,
        patch_size=PATCH_SIZE,
        spatial_merge_size=MERGE_SIZE,
        temporal_patch_size=TEMPORAL_PATCH_SIZE,
        out_hidden_size=64,  # = text hidden size: merged patches become text embeddings
        num_position_embeddings=256,  # a 16x16 grid of learned positions, interpolated per image
        deepstack_visual_indexes=[1],
    )
    config = Qwen3VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        # Qwen3-VL-8B/32B-Instruct (our target) do not tie the LM head to the embeddings.
        tie_word_embeddings=False,
    )
    config.dtype = torch.float32
    return config


def build_tiny_qwen3vl(out_dir: Path, seed: int = 0) -> Path:
    """Write a complete tiny Qwen3-VL model folder to `out_dir` (created) and return it.

    Loadable by AutoModelForImageTextToText / AutoProcessor / AutoTokenizer and by LlamaFactory
    (`model_name_or_path: <out_dir>`, `template: qwen3_vl_nothink`). Weights are drawn after
    `torch.manual_seed(seed)`, so the same seed gives identical weights and greedy outputs.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    config = build_config(tokenizer)

    # Seed a private generator state: restore the caller's global RNG afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3VLForConditionalGeneration(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=[config.text_config.eos_token_id, config.text_config.pad_token_id],
        pad_token_id=config.text_config.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    (out_dir / "README.md").write_text(
        README.format(seed=seed, n_params=n_params, vocab_size=len(tokenizer)), encoding="utf-8")
    return out_dir


def count_parameters(model_dir: Path) -> int:
    """Number of parameters stored in a model folder's safetensors files (without building a model)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            total += sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())
    return total
