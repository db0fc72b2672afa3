"""Check a LlamaFactory recipe in seconds, before any GPU is spent and without loading model weights.

Usage: python -m training.recipe_check llamafactory_configs/qwen3vl_32b/lora_sft_zero3.yaml --set bf16=false

Two layers, every problem reported with a message that names it (exit 2), or one OK line (exit 0):

1. LlamaFactory's own argument parser, the one its CLI runs: ``hparams.get_train_args`` for training
   recipes, ``hparams.get_infer_args`` for export (merge) and api/chat recipes (chosen from the keys:
   ``export_dir`` -> export; training keys -> train; otherwise infer). It rejects unknown keys and
   inconsistent settings. It never loads the model: it only requires ``model_name_or_path`` to be set,
   so a hub id that is not downloaded passes. Environment it needs, set here in-process and restored
   afterwards (see ``_launcher_env``): training recipes are parsed as rank 0 of a one-process torchrun
   (LOCAL_RANK/RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT), because LlamaFactory refuses DeepSpeed outside
   torchrun ("Please use `FORCE_TORCHRUN=1`") and refuses several GPUs in one process; the parser then
   builds a real (gloo/nccl) process group and, with DeepSpeed, the ZeRO config -- both are torn down
   afterwards. ALLOW_EXTRA_ARGS is unset so a typo'd key is always caught.
2. Our rules (the ones LlamaFactory does not know or only finds mid-run):
   - template: qwen3_vl_nothink for an Instruct model (name contains "Instruct", or our tiny model), and
     any template must exist;
   - dataset / eval_dataset names are in dataset_dir/dataset_info.json and their files exist;
   - cutoff_len holds one image at image_max_pixels (fracto_core.image_budget) and the largest
     sample recorded in dataset_dir/dataset_card.json; an image_max_pixels above the card's (or an
     image_min_pixels below it) is an error -- the builder never validated those token counts -- while
     a smaller budget (the tiny CPU recipes) is only a note, as image tokens can only shrink;
   - lora_rank <= the serving --max-lora-rank (DEFAULT_MAX_LORA_RANK); an export recipe's existing
     adapter_config.json rank too;
   - predict_with_generate refused under ZeRO-3; early_stopping_steps needs load_best_model_at_end,
     metric_for_best_model and evaluations.

slurm/train.sh runs ``python -m training.recipe_check "$RECIPE" --set k=v ...`` first: keep this CLI stable.
Relative paths in a recipe (dataset_dir, deepspeed) resolve against the current directory, as in
``llamafactory-cli``: run from the repository root.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import importlib
import json
import math
import os
import re
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.recipes import DEFAULT_MAX_LORA_RANK, load_recipe

REQUIRED_TEMPLATE = "qwen3_vl_nothink"
TINY_MODEL_MARKER = "# Tiny random Qwen3-VL"  # first line of tiny_qwen3vl's README.md
TRAIN_KEYS = ("do_train", "do_eval", "do_predict", "stage", "output_dir", "dataset", "eval_dataset", "deepspeed")
# Aspect ratios probed for the most image tokens one image can take at a pixel budget (rounding to
# 32-px multiples can push a non-square image a little above budget / 1024).
_PROBE_RATIOS = (1.0, 5 / 4, 4 / 3, 3 / 2, 16 / 10, 16 / 9, 2.0, 3.0, 4.0)


@dataclass
class RecipeReport:
    """What the check found for one recipe (with its overrides applied)."""

    path: Path
    kind: str  # "train" | "export" | "infer"
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # what the OK line reports
    notes: list[str] = field(default_factory=list)  # worth knowing, not wrong

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line when OK; otherwise a header plus one line per problem."""
        if self.ok:
            bits = [f"{k} {v}" for k, v in self.facts.items() if v not in (None, "")]
            return f"recipe_check: OK {self.path} ({self.kind}): " + ", ".join(bits)
        lines = [f"recipe_check: {len(self.problems)} problem(s) in {self.path} ({self.kind}):"]
        return "\n".join(lines + [f"  - {p}" for p in self.problems])


# ----------------------------------------------------------------------------- LlamaFactory's parser


def recipe_kind(recipe: dict) -> str:
    """Which LlamaFactory command the recipe is for: train, export (merge) or infer (api/chat)."""
    if "export_dir" in recipe:
        return "export"
    if any(key in recipe for key in TRAIN_KEYS):
        return "train"
    return "infer"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _launcher_env(distributed: bool) -> Iterator[None]:
    """The environment `llamafactory-cli` gives its parser, set in-process and fully restored after.

    distributed=True plays rank 0 of a one-process torchrun. DeepSpeed's CPU backend would JIT-compile
    its shared-memory all-reduce op (50-130 s) when the parser initialises the process group; the parse
    never communicates, so that build is skipped (``build_shm_op`` returns None, a path DeepSpeed
    supports). A process group that existed before is left alone.
    """
    saved_env = dict(os.environ)
    os.environ.pop("ALLOW_EXTRA_ARGS", None)  # a typo'd key must always be caught
    os.environ["LLAMAFACTORY_VERBOSITY"] = "WARN"  # keep the parser from switching transformers to INFO
    created: dict[str, Any] = {}
    if distributed:
        import torch.distributed as dist
        from accelerate.state import PartialState

        if not (dist.is_available() and dist.is_initialized()):
            os.environ.update({"LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())})
            created["process_group"] = True
            created["accelerate_state"] = PartialState._shared_state == {}
            try:
                ds_torch = importlib.import_module("deepspeed.comm.torch")
            except ImportError:
                ds_torch = None
            if ds_torch is not None and hasattr(ds_torch, "build_shm_op"):
                created["shm"] = (ds_torch, ds_torch.build_shm_op)
                ds_torch.build_shm_op = lambda: None
    try:
        yield
    finally:
        if "shm" in created:
            module, original = created["shm"]
            module.build_shm_op = original
        if created.get("process_group"):
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            with contextlib.suppress(ImportError):
                comm = importlib.import_module("deepspeed.comm.comm")
                comm.cdb = None  # DeepSpeed's handle on the group just destroyed
            if created.get("accelerate_state"):
                from accelerate.state import AcceleratorState

                AcceleratorState._reset_state(reset_partial_state=True)
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()  # else is_deepspeed_zero3_enabled() stays True for this process
        os.environ.clear()
        os.environ.update(saved_env)


def _known_keys(kind: str) -> set[str]:
    """Every key LlamaFactory's parser for this kind of recipe accepts (train: +TrainingArguments)."""
    from llamafactory.hparams import (
        DataArguments,
        FinetuningArguments,
        GeneratingArguments,
        ModelArguments,
        TrainingArguments,
    )

    classes = [ModelArguments, DataArguments, FinetuningArguments, GeneratingArguments]
    if kind == "train":
        classes.append(TrainingArguments)
    return {f.name for cls in classes for f in dataclasses.fields(cls) if f.init}


def _unknown_key_hint(message: str, kind: str) -> str:
    """' (did you mean ...)' for the keys named in HfArgumentParser's unknown-keys message."""
    match = re.search(r"not used by the HfArgumentParser: \[(.*)\]", message)
    if not match:
        return ""
    known, everything = _known_keys(kind), _known_keys("train")
    hints = []
    for key in re.findall(r"'([^']+)'", match.group(1)):
        if key in everything:
            command = "export" if kind == "export" else "api/chat"
            hints.append(f"{key} is a training key, not one of `llamafactory-cli {command}`")
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1)
        if close:
            hints.append(f"{key} -> {close[0]}?")
    return f" ({'; '.join(hints)})" if hints else ""


def run_llamafactory_parser(recipe: dict, kind: str) -> tuple[tuple | None, str | None]:
    """(parsed argument dataclasses, None) or (None, LlamaFactory's message, with a hint)."""
    from llamafactory.hparams import get_infer_args, get_train_args

    parse = get_train_args if kind == "train" else get_infer_args
    try:
        with _launcher_env(distributed=kind == "train"):
            return parse(dict(recipe)), None
    except (ValueError, TypeError, OSError, ImportError, RuntimeError) as exc:
        message = f"LlamaFactory rejected the recipe: {exc}{_unknown_key_hint(str(exc), kind)}"
        if "bf16" in str(exc) and recipe.get("bf16"):
            message += " (on a machine without a bf16 GPU, check with --set bf16=false)"
        return None, message


# ----------------------------------------------------------------------------- our rules


def _defaults() -> dict[str, Any]:
    """LlamaFactory's default for every key (used when the parser could not run)."""
    from llamafactory.hparams import DataArguments, FinetuningArguments, ModelArguments

    out: dict[str, Any] = {}
    for cls in (ModelArguments, DataArguments, FinetuningArguments):
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
    return out


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


# ----------------------------------------------------------------------------- the check


def check_recipe(path: Path | str, overrides: list[str] | dict | None = None, *,
                 max_lora_rank: int = DEFAULT_MAX_LORA_RANK, check_dataset: bool = True) -> RecipeReport:
    """Check one recipe (with overrides) without loading any model; the report lists every problem."""
    path = Path(path)
    try:
        recipe = load_recipe(path, overrides)
    except (OSError, ValueError) as exc:
        return RecipeReport(path, "unknown", [str(exc)])
    kind = recipe_kind(recipe)
    report = RecipeReport(path, kind)

    parsed, parser_problem = run_llamafactory_parser(recipe, kind)
    if parser_problem:
        report.problems.append(parser_problem)

    # values as LlamaFactory sees them: parsed when possible, else the recipe over LlamaFactory's defaults
    if parsed is not None:
        model_args, data_args = parsed[0], parsed[1]
        finetuning_args = parsed[3] if kind == "train" else parsed[2]
        values = {"model_name_or_path": model_args.model_name_or_path, "template": data_args.template,
                  "image_max_pixels": model_args.image_max_pixels, "image_min_pixels": model_args.image_min_pixels,
                  "cutoff_len": data_args.cutoff_len, "dataset_dir": data_args.dataset_dir,
                  "finetuning_type": finetuning_args.finetuning_type, "lora_rank": finetuning_args.lora_rank}
    else:
        values = {**_defaults(), **recipe}
    cutoff_len = _as_int(values.get("cutoff_len"))
    max_px, min_px = _as_int(values.get("image_max_pixels")), _as_int(values.get("image_min_pixels"))

    report.problems += check_template(values.get("model_name_or_path"), values.get("template"))
    report.facts.update(model=values.get("model_name_or_path"), template=values.get("template"))

    if kind == "train":
        if values.get("finetuning_type") == "lora":
            report.problems += check_lora_rank(values.get("lora_rank"), max_lora_rank)
            report.facts["lora_rank"] = values.get("lora_rank")
        report.problems += check_budget(cutoff_len, max_px, min_px)
        stage, ds_problem = deepspeed_stage(recipe.get("deepspeed"))
        if ds_problem:
            report.problems.append(ds_problem)
        report.problems += check_training_rules(recipe, stage)
        names = {"dataset": _names(recipe.get("dataset")), "eval_dataset": _names(recipe.get("eval_dataset"))}
        report.facts.update(dataset=",".join(names["dataset"]), eval_dataset=",".join(names["eval_dataset"]),
                            cutoff_len=cutoff_len, image_max_pixels=max_px,
                            deepspeed=f"ZeRO-{stage}" if stage is not None else "none")
        if check_dataset:
            problems, root = check_dataset_files(values.get("dataset_dir"), names)
            report.problems += problems
            if root is not None and not problems:
                card_problems, card_facts = check_card(root, cutoff_len, max_px, min_px)
                report.problems += card_problems
                report.notes += card_facts.pop("notes", [])
                report.facts.update(card_facts)
        batch = (recipe.get("per_device_train_batch_size", 8), recipe.get("gradient_accumulation_steps", 1))
        report.facts["batch_per_gpu"] = f"{batch[0]}x{batch[1]} (x GPUs)"
    else:
        adapter = recipe.get("adapter_name_or_path")
        for one in _names(adapter):
            config = Path(one) / "adapter_config.json"
            if config.is_file():  # before training it does not exist yet: nothing to check
                with contextlib.suppress(OSError, json.JSONDecodeError):
                    rank = json.loads(config.read_text(encoding="utf-8")).get("r")
                    report.problems += check_lora_rank(rank, max_lora_rank, f"adapter {one} rank")
        report.facts.update(adapter=adapter, export_dir=recipe.get("export_dir"))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.recipe_check",
        description="Check a LlamaFactory recipe with LlamaFactory's own argument parser plus FractoVLM's rules "
                    "(template, datasets, cutoff_len vs. the dataset card, LoRA rank vs. serving, ZeRO-3 and "
                    "early-stopping rules), without loading any model. Exit 0: OK (one line); exit 2: problems.")
    parser.add_argument("recipe", type=Path, help="the YAML recipe (relative paths inside resolve against the "
                                                  "current directory: run from the repository root)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key, as `llamafactory-cli train RECIPE key=value` (repeatable)")
    parser.add_argument("--max-lora-rank", type=int, default=DEFAULT_MAX_LORA_RANK,
                        help="the serving side's vLLM --max-lora-rank (default %(default)s, "
                             "training.recipes.DEFAULT_MAX_LORA_RANK)")
    parser.add_argument("--no-dataset-check", action="store_true",
                        help="skip the dataset checks (dataset_info.json names, files, dataset card)")
    args = parser.parse_args(argv)
    report = check_recipe(args.recipe, args.overrides, max_lora_rank=args.max_lora_rank,
                          check_dataset=not args.no_dataset_check)
    for note in report.notes:
        print(f"recipe_check: note: {note}", file=sys.stderr, flush=True)
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr, flush=True)
    return 0 if report.ok else 2


if __name__ == "__main__":
    os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "WARN")  # before llamafactory configures its logger
    sys.exit(main())
