"""The server command line for a trained recipe: vLLM on a cluster, `llamafactory-cli api` on a CPU.

Usage: python -m training.serving --recipe llamafactory_configs/qwen3vl_32b/lora_sft.yaml \
           --adapter saves/qwen3vl-32b/lora --tensor-parallel-size 4 --port 8000 --print-args

slurm/serve.sh builds its command here so the one template is testable in Python and serving matches
training (../shared/DESIGN.md §3, §6):
- the base model (at the recipe's `model_revision`, as training loaded it: `--revision`), template and pixel
  budget come from the recipe: the recipe's `image_max_pixels` becomes the image processor's `size` range
  (`--mm-processor-kwargs`, the keys Qwen3-VL reads; see processor_kwargs), so the served model sees images at
  the resolution it was trained on;
- base + LoRA: `--enable-lora --lora-modules NAME=ADAPTER --max-lora-rank R` with R ≥ the adapter's rank
  and ≥ training.recipes.DEFAULT_MAX_LORA_RANK (vLLM's own default, 16, refuses bigger adapters), rounded up
  to a rank vLLM accepts; or a merged model (`llamafactory-cli export`) served as is;
- `--limit-mm-per-prompt.image 1 --limit-mm-per-prompt.video 0` (one image, no video memory reserved), `--max-model-len` = the recipe's cutoff_len
  (what the builder validated every sample against) unless given.

`--print-args` prints the command, one argument per line (slurm/serve.sh reads it with mapfile).
With `--backend llamafactory` the command is `llamafactory-cli api CONFIG` and `--api-config PATH` writes
the YAML it reads (base + adapter or merged, same template and pixel budget); that server has no /health,
so its readiness path is /v1/models (`--print-health-path`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import yaml

from fracto_core.image_budget import FACTOR, IMAGE_MAX_PIXELS, PROCESSOR_MIN_PIXELS
from training.recipes import DEFAULT_MAX_LORA_RANK, load_recipe

# Ranks vLLM's LoRA config accepts for --max-lora-rank.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
BACKENDS = ("vllm", "llamafactory")
HEALTH_PATHS = {"vllm": "/health", "llamafactory": "/v1/models"}


class ServingError(ValueError):
    """A user-facing problem with the serving request; the message says what to fix."""


def adapter_rank(adapter: Path) -> int | None:
    """The LoRA rank stored in adapter_config.json ("r"), when the adapter folder has one."""
    cfg = Path(adapter) / "adapter_config.json"
    if not cfg.is_file():
        return None
    return int(json.loads(cfg.read_text(encoding="utf-8")).get("r", 0)) or None


def max_lora_rank_for(recipe: dict, adapter: Path | None = None) -> int:
    """The smallest rank vLLM accepts that covers the recipe's and the adapter's rank and our default."""
    stored = adapter_rank(adapter) if adapter else None
    need = max(int(recipe.get("lora_rank", 8)), stored or 0, DEFAULT_MAX_LORA_RANK)
    for rank in VLLM_LORA_RANKS:
        if rank >= need:
            return rank
    raise ServingError(f"LoRA rank {need} is above the largest rank vLLM serves ({VLLM_LORA_RANKS[-1]}); "
                       "merge the adapter (slurm/merge.sh) and serve the merged model")


def default_model_name(adapter: Path | None, merged: Path | None, recipe: dict) -> str:
    """The name clients ask for: the adapter's or merged model's folder name, else the base model's."""
    source = adapter or merged or Path(str(recipe["model_name_or_path"]))
    return Path(source).name


def processor_kwargs(recipe: dict) -> dict[str, dict[str, int]]:
    """The Qwen3-VL image processor's pixel range for serving, so served images get the training image tokens.

    Which keys are read (checked in the installed transformers 5.6.0,
    models/qwen2_vl/image_processing_qwen2_vl.py, the image processor Qwen3-VL uses): `size` =
    {"shortest_edge", "longest_edge"} bounds smart_resize; a call-time `max_pixels` is honoured only
    together with `min_pixels` (`_standardize_kwargs`), so `{"max_pixels": N}` alone -- what serve.sh sent
    before -- is silently ignored and the model's own 16,777,216 px cap applies. vLLM hands
    `--mm-processor-kwargs` to the HF processor, and its Qwen3-VL code reads the cap from `size`
    (vllm-project/vllm PR #34402, 2026-02: `{"size": {"longest_edge": ..., "shortest_edge": ...}}` updates
    the Qwen3-VL image processor's max pixels; issue #13143 shows `max_pixels` warned as "not a valid
    argument"). Both keys must be given (transformers raises without either).

    Values, as training applied them (LlamaFactory 0.9.5 mm_plugin: `_preprocess_image` scales an image to
    <= image_max_pixels, then the processor runs smart_resize with the model's own size, untouched):
    shortest_edge = the model's own 65,536; longest_edge = (sqrt(image_max_pixels) + 32)^2, the largest
    area smart_resize rounds a budget-sized image up to (each side rounds to a multiple of 32; aspect
    ratios up to ~12:1), so an image already resized to the budget -- as eval.run sends it -- keeps its
    training token count exactly, while a full-resolution image from any other client is capped at
    ~the budget: 589,824 -> 640,000 px, at most 625 tokens (tests/test_serving_budget.py).
    """
    budget = int(recipe.get("image_max_pixels", IMAGE_MAX_PIXELS))
    longest = (math.isqrt(budget) + FACTOR) ** 2
    return {"size": {"longest_edge": longest, "shortest_edge": PROCESSOR_MIN_PIXELS}}


def vllm_args(recipe: dict, *, adapter: Path | None = None, merged: Path | None = None,
              model_name: str | None = None, tensor_parallel_size: int = 1, host: str = "0.0.0.0",
              port: int = 8000, max_model_len: int | None = None, vllm_bin: str = "vllm") -> list[str]:
    """The `vllm serve` command for base + LoRA adapter (adapter=) or a merged model (merged=)."""
    if adapter and merged:
        raise ServingError("give --adapter or --merged, not both")
    if tensor_parallel_size < 1:
        raise ServingError(f"tensor parallel size must be at least 1 (got {tensor_parallel_size})")
    name = model_name or default_model_name(adapter, merged, recipe)
    model = str(merged) if merged else str(recipe["model_name_or_path"])
    length = max_model_len or int(recipe.get("cutoff_len", 2048))
    args = [vllm_bin, "serve", model,
            "--host", host, "--port", str(port),
            "--tensor-parallel-size", str(tensor_parallel_size),
            "--max-model-len", str(length),
            "--limit-mm-per-prompt.image", "1", "--limit-mm-per-prompt.video", "0",  # one image, no video
            "--mm-processor-kwargs", json.dumps(processor_kwargs(recipe), separators=(",", ":")),
            "--dtype", "bfloat16" if recipe.get("bf16") else "auto"]
    if not merged and recipe.get("model_revision"):
        args += ["--revision", str(recipe["model_revision"])]  # the base commit trained on (the tokenizer's too)
    if adapter:
        # Clients ask for the adapter's name; the base stays reachable under its own name for comparison.
        base_name = Path(str(recipe["model_name_or_path"])).name
        if base_name == name:
            raise ServingError(f"the adapter name {name!r} equals the base model's name; pass --model-name")
        args += ["--served-model-name", base_name,
                 "--enable-lora", "--lora-modules", f"{name}={adapter}",
                 "--max-lora-rank", str(max_lora_rank_for(recipe, adapter))]
    else:
        args += ["--served-model-name", name]
    return args


def llamafactory_api_config(recipe: dict, *, adapter: Path | None = None, merged: Path | None = None) -> dict:
    """The YAML for `llamafactory-cli api` (CPU stand-in for vLLM): same template and pixel budget."""
    if adapter and merged:
        raise ServingError("give --adapter or --merged, not both")
    config = {
        "model_name_or_path": str(merged) if merged else str(recipe["model_name_or_path"]),
        "template": recipe.get("template", "qwen3_vl_nothink"),
        "infer_backend": "huggingface",
        "trust_remote_code": True,
    }
    if not merged and recipe.get("model_revision"):
        config["model_revision"] = str(recipe["model_revision"])  # the base commit trained on
    for key in ("image_max_pixels", "image_min_pixels"):
        if key in recipe:
            config[key] = int(recipe[key])
    if adapter:
        config.update(adapter_name_or_path=str(adapter), finetuning_type="lora")
    return config


def weight_folders(recipe: dict, adapter: Path | None = None, merged: Path | None = None) -> list[Path]:
    """The local folders whose files define the served weights (for eval's fingerprint, eval/identity.py):
    the merged model, or the adapter plus the base model when the base is a local folder (a hub id is not)."""
    folders = [merged] if merged is not None else [adapter] if adapter is not None else []
    if merged is None:
        base = Path(str(recipe["model_name_or_path"]))
        if base.is_dir():
            folders.append(base)
    return [f.resolve() for f in folders]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.serving", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--recipe", required=True, type=Path, help="the training recipe (YAML)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override, as given to training (repeatable)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--adapter", type=Path, help="LoRA adapter folder (served on top of the recipe's base)")
    group.add_argument("--merged", type=Path, help="merged model folder (llamafactory-cli export)")
    parser.add_argument("--backend", choices=BACKENDS, default="vllm")
    parser.add_argument("--model-name", help="name clients ask for (default: adapter/merged folder name)")
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-model-len", type=int, help="default: the recipe's cutoff_len")
    parser.add_argument("--vllm-bin", default="vllm", help="the vllm executable (from its own environment)")
    parser.add_argument("--api-config", type=Path, help="llamafactory backend: write its YAML here")
    parser.add_argument("--print-args", action="store_true", help="print the command, one argument per line")
    parser.add_argument("--print-model-name", action="store_true", help="print the name clients ask for")
    parser.add_argument("--print-health-path", action="store_true", help="print the readiness URL path")
    parser.add_argument("--print-weights", action="store_true",
                        help="print the local weight folders, one per line (serve.sh records them for eval)")
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        recipe = load_recipe(ns.recipe, ns.overrides)
        if "model_name_or_path" not in recipe:
            raise ServingError(f"{ns.recipe}: no model_name_or_path")
        for flag, folder in (("--adapter", ns.adapter), ("--merged", ns.merged)):
            if folder is not None and not folder.is_dir():
                raise ServingError(f"{flag} {folder}: no such folder")
        name = ns.model_name or default_model_name(ns.adapter, ns.merged, recipe)
        if ns.backend == "vllm":
            args = vllm_args(recipe, adapter=ns.adapter, merged=ns.merged, model_name=name,
                             tensor_parallel_size=ns.tensor_parallel_size, host=ns.host, port=ns.port,
                             max_model_len=ns.max_model_len, vllm_bin=ns.vllm_bin)
        else:
            config = llamafactory_api_config(recipe, adapter=ns.adapter, merged=ns.merged)
            if ns.api_config is not None:
                ns.api_config.parent.mkdir(parents=True, exist_ok=True)
                ns.api_config.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
            elif ns.print_args:
                raise ServingError("--backend llamafactory needs --api-config PATH (the YAML it serves)")
            args = ["llamafactory-cli", "api", str(ns.api_config)]
    except (ServingError, ValueError, FileNotFoundError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if ns.print_model_name:
        print(name)
    if ns.print_health_path:
        print(HEALTH_PATHS[ns.backend])
    if ns.print_weights:
        print("\n".join(str(f) for f in weight_folders(recipe, ns.adapter, ns.merged)))
    if ns.print_args or not (ns.print_model_name or ns.print_health_path or ns.print_weights):
        print("\n".join(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
