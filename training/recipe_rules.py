"""FractoVLM's own recipe rules, the ones LlamaFactory does not know or only finds mid-run (layer 2 of the check).

Reads the dataset folder (dataset_info.json, dataset_card.json), the DeepSpeed JSON and an adapter's
adapter_config.json; writes nothing. Each check returns a list of problems (messages naming the fix).
training.recipe_check composes them.
"""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Any

REQUIRED_TEMPLATE = "qwen3_vl_nothink"
TINY_MODEL_MARKER = "# Tiny random Qwen3-VL"  # first line of tiny_qwen3vl's README.md
# Aspect ratios probed for the most image tokens one image can take at a pixel budget (rounding to
# 32-px multiples can push a non-square image a little above budget / 1024).
_PROBE_RATIOS = (1.0, 5 / 4, 4 / 3, 3 / 2, 16 / 10, 16 / 9, 2.0, 3.0, 4.0)


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _names(value: Any) -> list[str]:
    """dataset / eval_dataset as a list of names (LlamaFactory splits on commas)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def is_tiny_model(model: str) -> bool:
    """True for a folder built by tiny_qwen3vl (its README.md starts with the fixture's title)."""
    readme = Path(model) / "README.md"
    try:
        return readme.is_file() and readme.read_text(encoding="utf-8").startswith(TINY_MODEL_MARKER)
    except OSError:
        return False


def check_template(model: str | None, template: str | None) -> list[str]:
    """Instruct models (and our tiny one) need qwen3_vl_nothink; any template must exist."""
    problems = []
    if template is not None:
        from llamafactory.data.template import TEMPLATES

        if template not in TEMPLATES:
            close = difflib.get_close_matches(str(template), list(TEMPLATES), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"template {template!r} is not a LlamaFactory template{hint}")
    instruct = model is not None and ("instruct" in str(model).lower() or is_tiny_model(str(model)))
    if instruct and template != REQUIRED_TEMPLATE:
        problems.append(
            f"template {template!r} is wrong for the Instruct model {model}: use template: {REQUIRED_TEMPLATE} "
            f"(qwen3_vl inserts empty <think> blocks meant for the Thinking models); use the same template for "
            f"training, export and serving")
    return problems


def budget_image_tokens(image_max_pixels: int, image_min_pixels: int) -> int:
    """The most image tokens one image can take at this pixel budget (probing common aspect ratios)."""
    from fracto_core.image_budget import image_tokens

    most = 0
    for ratio in _PROBE_RATIOS:
        # a source image twice the budget's side, so LlamaFactory scales it down to the budget
        width, height = int(2 * math.sqrt(image_max_pixels * ratio)), int(2 * math.sqrt(image_max_pixels / ratio))
        most = max(most, image_tokens(width, height, image_max_pixels, image_min_pixels),
                   image_tokens(height, width, image_max_pixels, image_min_pixels))
    return most


def check_budget(cutoff_len: int | None, image_max_pixels: int | None, image_min_pixels: int | None) -> list[str]:
    """cutoff_len must hold at least one image at the recipe's pixel budget (no dataset needed)."""
    if cutoff_len is None or image_max_pixels is None or image_min_pixels is None:
        return []
    from fracto_core.image_budget import VISION_MARKER_TOKENS

    need = budget_image_tokens(image_max_pixels, image_min_pixels) + VISION_MARKER_TOKENS
    if cutoff_len < need:
        return [(f"cutoff_len {cutoff_len} is too small for the image budget: one image at image_max_pixels "
                f"{image_max_pixels:,} takes up to {need} tokens before any text, and LlamaFactory silently "
                f"truncates image tokens; raise cutoff_len or lower image_max_pixels (in the builder too)")]
    return []


def check_dataset_files(dataset_dir: str | None, names: dict[str, list[str]]) -> tuple[list[str], Path | None]:
    """Every dataset / eval_dataset name is in dataset_info.json and its file exists; (problems, dir)."""
    if not any(names.values()):
        return [], None
    if dataset_dir is None:
        return ["dataset_dir is not set (the builder's output, e.g. output/fracto/dataset)"], None
    root = Path(dataset_dir)
    where = f"{dataset_dir} (relative paths resolve against {Path.cwd()})"
    if not root.is_dir():
        return [(f"dataset_dir {where} does not exist: build it with python -m dataset_builders.build "
                f"--out <dir> (the dataset is <dir>/dataset), or fix dataset_dir")], None
    info_path = root / "dataset_info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{info_path}: cannot read dataset_info.json ({exc})"], root
    problems = []
    for key, wanted in names.items():
        for name in wanted:
            entry = info.get(name)
            if not isinstance(entry, dict):
                problems.append(f"{key} {name!r} is not in {info_path} (it has: {', '.join(sorted(info))})")
                continue
            file_name = entry.get("file_name")
            if not file_name or not (root / file_name).exists():
                problems.append(f"{key} {name!r}: its file {root / str(file_name)} does not exist")
    return problems, root


def check_card(root: Path, cutoff_len: int | None, image_max_pixels: int | None,
               image_min_pixels: int | None) -> tuple[list[str], dict]:
    """The recipe's pixel budget is the one the builder validated, and cutoff_len holds its largest sample.

    Returns (problems, facts); facts["notes"] lists harmless differences (a smaller budget than the card's,
    as the tiny CPU recipes use: image tokens only shrink, so the card's largest-sample bound still holds).
    """
    card_path = root / "dataset_card.json"
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [(f"{card_path}: cannot read the dataset card ({exc}); cutoff_len and image_max_pixels cannot be "
                f"checked against the data: build with python -m dataset_builders.build, or use "
                f"--no-dataset-check")], {}
    problems, notes = [], []
    for key, ours in (("image_max_pixels", image_max_pixels), ("image_min_pixels", image_min_pixels)):
        theirs = card.get(key)
        if theirs is None or ours is None or int(theirs) == ours:
            continue
        # image tokens only grow with image_max_pixels (and shrink with image_min_pixels): a budget above
        # the card's (a floor below it) can make samples the builder never validated
        unsafe = ours > int(theirs) if key == "image_max_pixels" else ours < int(theirs)
        text = (f"{key} {ours:,} differs from the dataset card's {int(theirs):,} ({card_path}); the builder "
                f"validated the samples at {int(theirs):,}")
        if unsafe:
            problems.append(f"{text}, and more pixels mean more image tokens than it checked: set {key}: "
                            f"{int(theirs)} or rebuild with --{key.replace('_', '-')} {ours}")
        else:
            notes.append(f"{text}; fewer image tokens than it checked, so the card's bound still holds -- serve "
                         f"and evaluate with this recipe's {key}, not the card's")
    bound = card.get("max_sample_tokens_bound")
    if bound is not None and cutoff_len is not None and cutoff_len < int(bound):
        problems.append(
            f"cutoff_len {cutoff_len} is smaller than the dataset's largest sample (up to {int(bound)} tokens at "
            f"image_max_pixels {card.get('image_max_pixels'):,}, {card_path}): LlamaFactory would truncate "
            f"its image tokens; raise cutoff_len to >= {int(bound)} or lower image_max_pixels")
    return problems, {"largest_sample": bound, "notes": notes}


def check_lora_rank(value: Any, max_lora_rank: int, source: str = "lora_rank") -> list[str]:
    rank = _as_int(value)
    if rank is not None and rank > max_lora_rank:
        return [(f"{source} {rank} exceeds the serving max_lora_rank {max_lora_rank} (vLLM --max-lora-rank; "
                f"DEFAULT_MAX_LORA_RANK in training/recipes.py): the adapter could not be served; lower lora_rank "
                f"or raise --max-lora-rank")]
    return []


def deepspeed_stage(value: Any) -> tuple[int | None, str | None]:
    """(ZeRO stage, problem) of the recipe's deepspeed value (a JSON path or an inline dict)."""
    if value in (None, ""):
        return None, None
    if isinstance(value, dict):
        config = value
    else:
        path = Path(str(value))
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except OSError:
            return None, (f"deepspeed config {value} not found (relative paths resolve against {Path.cwd()}; "
                          f"run from the repository root)")
        except json.JSONDecodeError as exc:
            return None, f"deepspeed config {value} is not valid JSON: {exc}"
    stage = (config.get("zero_optimization") or {}).get("stage")
    return _as_int(stage), None


def check_training_rules(recipe: dict, zero_stage: int | None) -> list[str]:
    """predict_with_generate under ZeRO-3, and early stopping's companions."""
    problems = []
    if recipe.get("predict_with_generate") and zero_stage == 3:
        problems.append("predict_with_generate is refused under DeepSpeed ZeRO-3 (LlamaFactory cannot generate "
                        "with sharded weights): drop it and evaluate generations with the eval harness instead")
    if recipe.get("early_stopping_steps") is not None:
        missing = [k for k in ("load_best_model_at_end", "metric_for_best_model") if not recipe.get(k)]
        if missing:
            problems.append(
                f"early_stopping_steps needs {' and '.join(missing)} (early_stopping_steps is the patience in "
                f"evaluation rounds; without them the trainer stops with an error at the first evaluation): set "
                f"load_best_model_at_end: true and metric_for_best_model: eval_loss")
        if str(recipe.get("eval_strategy", "no")).lower() == "no":
            problems.append("early_stopping_steps needs evaluations: set eval_strategy: steps (and eval_dataset)")
    return problems
