"""The launch plan of a training job: gradient accumulation for the allocation, and the checkpoint to resume.

Usage: python -m training.launch_plan --recipe RECIPE [--set key=value ...] --nodes N --gpus-per-node G

slurm/train.sh runs it after the recipe check. It prints the overrides to add, one `key=value` per line on
stdout (gradient_accumulation_steps, resume_from_checkpoint, overwrite_output_dir), and what it decided on
stderr (the job log); exit 2 with the reason when the job cannot run as allocated.

Effective batch: a recipe states its target in a comment line `# fracto: effective_batch=4` (LlamaFactory
refuses unknown keys; training.recipes.recipe_directives reads it); --effective-batch overrides it. Then
gradient_accumulation_steps = target / (nodes x GPUs per node x per_device_train_batch_size), refused when not
a whole number. Without a target, the recipe's own accumulation stays and the resulting batch is printed.
Resume: the newest complete checkpoint in output_dir (training.checkpoints), unless the overrides name one; when
output_dir holds only incomplete ones, overwrite_output_dir=true starts afresh (else LlamaFactory resumes from them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.checkpoints import ResumeError, choose_checkpoint
from training.recipes import load_recipe, recipe_directives


class PlanError(Exception):
    """The job cannot run as allocated; the message says why and what to change."""


def accumulation_for(target: int, nodes: int, gpus_per_node: int, per_device: int) -> int:
    """gradient_accumulation_steps that makes nodes x GPUs x per_device x steps == target exactly."""
    per_step = nodes * gpus_per_node * per_device
    if target < per_step or target % per_step:
        raise PlanError(
            f"the target effective batch {target} cannot be met exactly on {nodes} node(s) x {gpus_per_node} "
            f"GPU(s) x per_device_train_batch_size {per_device} = {per_step} samples per step: use an "
            f"allocation whose nodes x GPUs x per-device batch divides {target} (e.g. --gres=gpu:N), or change "
            f"per_device_train_batch_size, or state another target (EFFECTIVE_BATCH=...)")
    return target // per_step


def plan(recipe_path: Path, overrides: list[str], nodes: int, gpus_per_node: int,
         effective_batch: int | None = None) -> tuple[list[str], list[str]]:
    """(overrides to add, messages)."""
    recipe = load_recipe(recipe_path, overrides)
    given = {o.partition("=")[0].strip() for o in overrides}
    per_device = int(recipe.get("per_device_train_batch_size", 8))  # LlamaFactory's (HF's) default is 8
    target = effective_batch
    source = "EFFECTIVE_BATCH"
    if target is None and "effective_batch" in (directives := recipe_directives(recipe_path)):
        target, source = int(directives["effective_batch"]), f"# fracto: line of {recipe_path.name}"
    add, notes = [], []
    if target is None:
        steps = int(recipe.get("gradient_accumulation_steps", 1))
        notes.append(f"effective batch {nodes * gpus_per_node * per_device * steps} = {nodes} node(s) x "
                     f"{gpus_per_node} GPU(s) x per-device {per_device} x accumulation {steps} (the recipe states "
                     f"no target)")
    else:
        steps = accumulation_for(target, nodes, gpus_per_node, per_device)
        if "gradient_accumulation_steps" in given and int(recipe["gradient_accumulation_steps"]) != steps:
            raise PlanError(f"gradient_accumulation_steps={recipe['gradient_accumulation_steps']} was set, but the "
                            f"target effective batch {target} ({source}) needs {steps} on this allocation")
        add.append(f"gradient_accumulation_steps={steps}")
        notes.append(f"effective batch {target} = {nodes} node(s) x {gpus_per_node} GPU(s) x per-device "
                     f"{per_device} x accumulation {steps} (target from {source})")
    if "resume_from_checkpoint" not in given and recipe.get("output_dir"):
        try:
            choice = choose_checkpoint(Path(str(recipe["output_dir"])), nodes * gpus_per_node)
        except ResumeError as exc:
            raise PlanError(str(exc)) from None
        for ckpt, why in choice.skipped:
            notes.append(f"skipping {ckpt}: {why}")
        if choice.checkpoint is not None:
            add += [f"resume_from_checkpoint={choice.checkpoint}", "overwrite_output_dir=false"]
            notes.append(f"resuming from {choice.checkpoint}")
        elif choice.skipped and "overwrite_output_dir" not in given:
            # Left unset, LlamaFactory resumes from the newest checkpoint-* folder itself (hparams/parser.py 0.9.5:
            # get_last_checkpoint when resume_from_checkpoint is None and overwrite_output_dir is false), i.e.
            # from the incomplete one just skipped, and the job fails loading it.
            add.append("overwrite_output_dir=true")
            notes.append("no complete checkpoint: starting fresh (overwrite_output_dir=true, so LlamaFactory does "
                         "not resume from an incomplete one)")
    return add, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.launch_plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", required=True, type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--gpus-per-node", type=int, required=True, help="processes per node (NPROC_PER_NODE)")
    parser.add_argument("--effective-batch", type=int, help="the target, instead of the recipe's # fracto: line")
    ns = parser.parse_args(argv)
    try:
        add, notes = plan(ns.recipe, ns.overrides, ns.nodes, ns.gpus_per_node, ns.effective_batch)
    except (PlanError, ValueError, OSError) as exc:
        print(f"launch_plan: error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"launch_plan: {note}", file=sys.stderr)
    print("\n".join(add))
    return 0


if __name__ == "__main__":
    sys.exit(main())
