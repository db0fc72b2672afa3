"""The tiny random Qwen3-VL fixture loads and runs with real transformers and LlamaFactory, offline.

transformers / llamafactory are imported inside the tests, after the session fixture has put the
offline switches and HF_HOME into the environment (huggingface_hub reads them at import time).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fracto_core.answer_format import format_answer, instruction_prompt

IMAGE_PAD = "<|image_pad|>"


@pytest.fixture(scope="session")
def build(hf_env):
    """The builder, imported after the environment is set (hf_env and tiny_dir live in conftest.py)."""
    from tiny_qwen3vl import build_tiny_qwen3vl

    return build_tiny_qwen3vl


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def image_message(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def test_build_is_fast(build, tmp_path):
    start = time.perf_counter()
    build(tmp_path / "model", seed=0)
    elapsed = time.perf_counter() - start
    assert elapsed < 15, f"building the tiny model took {elapsed:.1f} s"


def test_folder_loads_with_auto_classes_and_matches_the_spec(tiny_dir):
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "processor_config.json", "chat_template.jinja", "generation_config.json", "README.md"):
        assert (tiny_dir / name).is_file(), name
    assert "randomly initialised" in (tiny_dir / "README.md").read_text().lower()

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    processor = AutoProcessor.from_pretrained(tiny_dir)
    config = AutoConfig.from_pretrained(tiny_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)

    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen3VLProcessor"
    assert type(processor.video_processor).__name__ == "Qwen3VLVideoProcessor"
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    n_params = sum(p.numel() for p in model.parameters())
    assert 100_000 < n_params < 1_000_000
    assert str(model.dtype) == "torch.float32"

    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads,
            text.head_dim) == (64, 2, 4, 2, 16)
    assert text.rope_parameters["mrope_section"] == [4, 2, 2] and text.rope_parameters["mrope_interleaved"]
    assert text.vocab_size == len(tokenizer)
    assert (vision.depth, vision.hidden_size, vision.num_heads, vision.patch_size, vision.spatial_merge_size,
            vision.temporal_patch_size, vision.out_hidden_size) == (2, 32, 2, 16, 2, 2, 64)
    assert list(vision.deepstack_visual_indexes) == [1]
    # Untied like Qwen3-VL-8B/32B: the LM head is its own tensor.
    assert model.lm_head.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()

    # Token ids in the config are the tokenizer's.
    ids = tokenizer.convert_tokens_to_ids
    assert config.image_token_id == ids(IMAGE_PAD) == processor.image_token_id
    assert config.video_token_id == ids("<|video_pad|>")
    assert config.vision_start_token_id == ids("<|vision_start|>")
    assert config.vision_end_token_id == ids("<|vision_end|>")
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert model.generation_config.eos_token_id == [ids("<|im_end|>"), ids("<|endoftext|>")]


def test_tokenizer_special_tokens_and_prompt_length(tiny_dir):
    from transformers import AutoTokenizer

    from tiny_qwen3vl.build import ADDED_TOKENS, SPECIAL_TOKENS

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    special = set(tokenizer.all_special_tokens)
    for token in SPECIAL_TOKENS + ADDED_TOKENS:
        assert tokenizer.tokenize(f"a{token}b") == ["a", token, "b"], token
    for token in SPECIAL_TOKENS:
        assert token in special, token
    for token in ADDED_TOKENS:  # added, not special: they survive skip_special_tokens
        assert token not in special
        assert tokenizer.decode(tokenizer.encode(token), skip_special_tokens=True) == token
    # Special ids follow the BPE vocabulary, <|endoftext|> first, as in Qwen's tokenizer.
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(
        range(tokenizer.convert_tokens_to_ids("<|endoftext|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
              + len(SPECIAL_TOKENS)))

    # The BPE learnt our vocabulary: the prompt is ~2 tokens per word, not ~6 bytes per word.
    prompt = instruction_prompt()
    n_tokens = len(tokenizer(prompt).input_ids)
    assert n_tokens < 2 * len(prompt.split()), (n_tokens, len(prompt.split()))
    answer = format_answer(["fatigue striations", "gas pore"])
    assert len(tokenizer(answer).input_ids) <= 12
    # Byte-level: any text round-trips, including characters never seen in training.
    for text in (prompt, answer, "Größe 5 µm — 断口\n\tend"):
        assert tokenizer.decode(tokenizer(text).input_ids) == text


def test_chat_template_formats_like_qwen3_vl_instruct(tiny_dir):
    from transformers import AutoProcessor, AutoTokenizer

    processor = AutoProcessor.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    expected = ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n"
                "<|im_start|>assistant\n")
    messages = image_message("What is this?")
    assert processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == expected
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == expected
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": '{"features": []}'}]
    assert tokenizer.apply_chat_template(conversation, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        '<|im_start|>assistant\n{"features": []}<|im_end|>\n')


def test_image_tokens_forward_and_reproducible_greedy_generate(build, tiny_dir, tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_dir)
    image = random_image(300, 200)
    text = processor.apply_chat_template(image_message("Identify the features."), add_generation_prompt=True,
                                         tokenize=False)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    grid = inputs["image_grid_thw"]
    # 300x200 is below the 65,536 px minimum: scaled by sqrt(65536/60000) and rounded up to 32 px
    # multiples → 320x224 px = 20x14 patches of 16 px = 280 patches → 280 / (2x2 merge) = 70 tokens.
    assert grid.tolist() == [[1, 14, 20]]
    n_pad = int((inputs["input_ids"] == processor.image_token_id).sum())
    assert n_pad == int(grid.prod()) // 4 == 70

    model = AutoModelForImageTextToText.from_pretrained(tiny_dir).eval()
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()

    def greedy(model_dir: Path) -> list[int]:
        loaded = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
        out = loaded.generate(**inputs, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        return out[0, inputs["input_ids"].shape[1]:].tolist()

    first = greedy(tiny_dir)
    assert len(first) == 8
    assert greedy(tiny_dir) == first
    # A separate build with the same seed generates the same tokens.
    assert greedy(build(tmp_path / "again", seed=0)) == first


def test_same_seed_same_weights_other_seed_different(build, tiny_dir, tmp_path):
    from safetensors.torch import load_file

    reference = load_file(tiny_dir / "model.safetensors")
    same = load_file(build(tmp_path / "same", seed=0) / "model.safetensors")
    other = load_file(build(tmp_path / "other", seed=1) / "model.safetensors")
    assert reference.keys() == same.keys() == other.keys()
    assert all(reference[k].equal(same[k]) for k in reference)
    randomly_initialised = [k for k in reference if reference[k].std() > 0]  # norms start at 1, biases at 0
    assert len(randomly_initialised) > 10
    assert not any(reference[k].equal(other[k]) for k in randomly_initialised)
    # The tokenizer does not depend on the seed.
    assert (tmp_path / "other" / "tokenizer.json").read_bytes() == (tiny_dir / "tokenizer.json").read_bytes()


def test_cli_writes_model_and_prints_path_and_parameter_count(hf_env, tmp_path, capsys):
    from tiny_qwen3vl.__main__ import main
    from tiny_qwen3vl.build import count_parameters

    with pytest.raises(SystemExit) as help_exit:
        main(["--help"])
    assert help_exit.value.code == 0
    assert "--seed" in capsys.readouterr().out

    out_dir = tmp_path / "cli_model"
    assert main(["--out", str(out_dir), "--seed", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(out_dir)
    n_params = count_parameters(out_dir)
    assert f"parameters: {n_params:,} (seed 3" in lines[1]
    assert 100_000 < n_params < 1_000_000


def llamafactory_expected_image_tokens(width: int, height: int, image_max_pixels: int) -> int:
    """Image tokens for one image in LlamaFactory: its downscale to image_max_pixels, then Qwen's resize."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    if width * height > image_max_pixels:  # LlamaFactory's _preprocess_image
        factor = math.sqrt(image_max_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    h, w = smart_resize(height, width, factor=32, min_pixels=65536, max_pixels=16777216)
    return (h // 16) * (w // 16) // 4


def test_llamafactory_sft_pipeline_tokenizes_image_sample(tiny_dir, tmp_path):
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.extras.constants import IGNORE_INDEX
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    data_dir = tmp_path / "data"
    (data_dir / "images").mkdir(parents=True)
    random_image(640, 480, seed=1).save(data_dir / "images" / "a.png")
    answers = [format_answer(["fatigue striations"]), format_answer(["equiaxed dimples", "gas pore"])]
    samples = [{"messages": [{"role": "user", "content": "<image>" + instruction_prompt()},
                             {"role": "assistant", "content": answer}],
                "images": ["images/a.png"]} for answer in answers]
    (data_dir / "train.json").write_text(json.dumps(samples), encoding="utf-8")
    (data_dir / "dataset_info.json").write_text(json.dumps({"tiny": {
        "file_name": "train.json", "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    }}), encoding="utf-8")

    image_max_pixels = 256 * 256
    # As train/sft/workflow.py does it: args → tokenizer/processor → template → dataset.
    model_args, data_args, training_args, _, _ = get_train_args({
        "model_name_or_path": str(tiny_dir), "template": "qwen3_vl_nothink", "dataset": "tiny",
        "dataset_dir": str(data_dir), "stage": "sft", "do_train": True, "finetuning_type": "lora",
        "cutoff_len": 1024, "image_max_pixels": image_max_pixels, "output_dir": str(tmp_path / "out"),
        "overwrite_cache": True, "report_to": "none",
    })
    tokenizer_module = load_tokenizer(model_args)
    assert type(tokenizer_module["processor"]).__name__ == "Qwen3VLProcessor"
    tokenizer = tokenizer_module["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    dataset = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
    train = dataset["train_dataset"]
    assert len(train) == 2

    # 640x480 → LlamaFactory downscales to 295x221 (65,195 px), Qwen's resize then rounds up to the
    # 65,536 px minimum in 32 px steps: 320x224 → 20x14 patches → 70 tokens after the 2x2 merge.
    expected = llamafactory_expected_image_tokens(640, 480, image_max_pixels)
    assert expected == 70
    image_pad_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    for sample, answer in zip(train, answers):
        input_ids, labels = sample["input_ids"], sample["labels"]
        assert input_ids.count(image_pad_id) == expected
        assert len(labels) == len(input_ids)
        # Loss only on the answer: the prompt (system/user turn, image, "assistant\n") is masked.
        answer_start = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
        assert all(label == IGNORE_INDEX for label in labels[:answer_start])
        assert labels[answer_start:] == input_ids[answer_start:]
        assert tokenizer.decode(input_ids[:answer_start]).endswith("<|im_end|>\n<|im_start|>assistant\n")
        assert tokenizer.decode(labels[answer_start:]) == answer + "<|im_end|>\n"
        assert image_pad_id not in labels[answer_start:]

