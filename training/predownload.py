"""Download a recipe's base model into HF_HOME on a machine with internet (a login node), pinned to a revision.

Usage: python -m training.predownload llamafactory_configs/qwen3vl_32b/lora_sft_zero3.yaml [--revision SHA]

Compute nodes run offline (slurm/common.sh sets HF_HUB_OFFLINE=1 inside jobs), so the weights must be in the
shared HF_HOME before sbatch. The revision is the recipe's model_revision (LlamaFactory's key; "main" when
unset) or --revision; the command prints the commit it resolved to: put it in the recipe's model_revision to
pin the run (the run card records the resolved commit either way, from HF_HOME/hub/.../refs/). A recipe whose
model_name_or_path is a local folder needs nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.recipes import load_recipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.predownload", description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--revision", help="branch, tag or commit (default: the recipe's model_revision)")
    ns = parser.parse_args(argv)
    try:
        recipe = load_recipe(ns.recipe)
    except (OSError, ValueError) as exc:  # the messages name the recipe file
        print(f"predownload: error: {exc}", file=sys.stderr)
        return 2
    model = str(recipe.get("model_name_or_path") or "")
    if not model:
        print(f"predownload: error: {ns.recipe} has no model_name_or_path", file=sys.stderr)
        return 2
    if Path(model).is_dir():
        print(f"predownload: {model} is a local folder: nothing to download")
        return 0
    from huggingface_hub import snapshot_download

    revision = ns.revision or str(recipe.get("model_revision") or "main")
    path = Path(snapshot_download(repo_id=model, revision=revision))
    print(f"predownload: {model}@{revision} -> {path}\npredownload: commit {path.name} "
          f"(pin it: model_revision: {path.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
