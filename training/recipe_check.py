"""Check a LlamaFactory recipe in seconds, before any GPU is spent and without loading model weights.

Usage: python -m training.recipe_check llamafactory_configs/qwen3vl_32b/lora_sft_zero3.yaml --set bf16=false

Two layers, every problem reported with a message that names it (exit 2), or one OK line (exit 0):

1. LlamaFactory's own argument parser (training.recipe_parser), the one its CLI runs: ``hparams.get_train_args``
   for training recipes, ``hparams.get_infer_args`` for export (merge) and api/chat recipes (chosen from the
   keys: ``export_dir`` -> export; training keys -> train; otherwise infer). It rejects unknown keys and
   inconsistent settings. It never loads the model: it only requires ``model_name_or_path`` to be set, so a hub
   id that is not downloaded passes. Environment it needs, set here in-process and restored afterwards (see
   ``_launcher_env``): training recipes are parsed as rank 0 of a one-process torchrun
   (LOCAL_RANK/RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT), because LlamaFactory refuses DeepSpeed outside torchrun
   ("Please use `FORCE_TORCHRUN=1`") and refuses several GPUs in one process; the parser then builds a real
   (gloo/nccl) process group and, with DeepSpeed, the ZeRO config -- both are torn down afterwards.
   ALLOW_EXTRA_ARGS is unset so a typo'd key is always caught.
2. Our rules (training.recipe_rules; the ones LlamaFactory does not know or only finds mid-run):
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
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.recipe_parser import _defaults, recipe_kind, run_llamafactory_parser
from training.recipe_rules import (
    _as_int,
    _names,
    budget_image_tokens,
    check_budget,
    check_card,
    check_dataset_files,
    check_lora_rank,
    check_template,
    check_training_rules,
    deepspeed_stage,
)
from training.recipes import DEFAULT_MAX_LORA_RANK, load_recipe

__all__ = ["RecipeReport", "budget_image_tokens", "check_recipe", "main", "recipe_kind"]


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
