"""A recipe pinned to a base-model commit (`model_revision`, what `python -m training.predownload` tells the user to
set) is merged and served at that commit, as LlamaFactory trained it.

Real parts: the tiny Qwen3-VL laid out in the offline HF cache as `snapshot_download(revision=<commit>)` leaves it
(a snapshot folder, no refs/main), LlamaFactory's own argument parser and tokenizer loader, `slurm/merge.sh` running
`llamafactory-cli export` outside Slurm.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from training import serving
from training.recipes import RECIPES_ROOT, load_recipe

REPO = Path(__file__).resolve().parents[1]
TINY_RECIPE = RECIPES_ROOT / "tiny" / "lora_sft_cpu.yaml"
HUB_ID = "fracto-test/tiny-qwen3vl-pinned"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def pinned_hub_model(tiny_dir, hf_env) -> str:
    """HUB_ID in the offline cache at COMMIT only: a pinned download writes no refs/main."""
    repo = hf_env / "hub" / f"models--{HUB_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    if not snapshot.is_dir():
        shutil.copytree(tiny_dir, snapshot)
    assert not (repo / "refs" / "main").exists()
    return HUB_ID


def pinned_recipe() -> dict:
    return load_recipe(TINY_RECIPE, {"model_name_or_path": HUB_ID, "model_revision": COMMIT})


def test_vllm_serves_the_base_at_the_recipe_revision(tmp_path):
    adapter = tmp_path / "fracto-lora"
    adapter.mkdir()
    args = serving.vllm_args(pinned_recipe(), adapter=adapter)
    assert args[args.index("--revision") + 1] == COMMIT
    merged = serving.vllm_args(pinned_recipe(), merged=tmp_path / "merged")
    assert "--revision" not in merged  # a merged model is a local folder: no hub revision


def test_llamafactory_api_config_loads_the_pinned_base_offline(pinned_hub_model, hf_env, tmp_path):
    from llamafactory.hparams import get_infer_args
    from llamafactory.model import load_tokenizer

    config = serving.llamafactory_api_config(pinned_recipe(), adapter=tmp_path / "fracto-lora")
    assert config["model_revision"] == COMMIT
    config.pop("adapter_name_or_path")
    # the cache named outright: huggingface_hub reads HF_HOME once, when first imported, and in a whole test
    # session another test module may import it before hf_env sets HF_HOME (then the default cache is searched)
    config["cache_dir"] = str(hf_env / "hub")
    model_args = get_infer_args(config)[0]
    tokenizer = load_tokenizer(model_args)["tokenizer"]  # OSError offline at revision "main" (no refs/main)
    assert tokenizer.eos_token == "<|im_end|>"
    assert "model_revision" not in serving.llamafactory_api_config(pinned_recipe(), merged=tmp_path / "m")


@pytest.mark.slow  # builds a LoRA adapter and runs llamafactory-cli export: ~30 s
def test_merge_script_merges_into_the_pinned_base(pinned_hub_model, tiny_dir, train_env, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    adapter = tmp_path / "adapter"
    get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter)
    out = tmp_path / "merged"
    env = {**train_env, "VENV": str(Path(sys.executable).parent.parent), "PYTHONPATH": str(REPO)}
    env.pop("SLURM_JOB_ID", None)
    done = subprocess.run(
        ["bash", str(REPO / "slurm" / "merge.sh"), "--recipe", str(TINY_RECIPE),
         "--set", f"model_name_or_path={HUB_ID}", "--set", f"model_revision={COMMIT}",
         "--adapter", str(adapter), "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"model_revision: {COMMIT}" in (out / "merge_config.yaml").read_text()
    assert (out / "config.json").is_file() and any(out.glob("*.safetensors"))
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # it could only have read the cache
