"""Write a training run's card: what exactly was trained, on what data, by which code, where.

Usage: python -m training.run_card --recipe llamafactory_configs/tiny/lora_sft_cpu.yaml \
           --set max_steps=2 --out saves/run/run_card.json
       python -m training.run_card --recipe RECIPE --check-data      # are the dataset files there?
       python -m training.run_card --recipe RECIPE --get output_dir  # one resolved value (for the scripts)

slurm/train.sh writes it into the output folder before training starts, so even a run that dies early says
what it was. The card holds: the resolved recipe (file + overrides, as LlamaFactory reads them, including the
gradient_accumulation_steps train.sh derived), the SHA-256 of every dataset file the run reads
(dataset_info.json and each dataset / eval_dataset file; images are not hashed one by one) and of the dataset
card, the base model id with the requested and resolved revision, the git commit and whether the tree had
changes (untracked files included), the Slurm job id, nodes and GPUs, the effective batch (target and
value), the launcher layout, versions of torch / transformers / llamafactory / deepspeed / peft, the time (UTC).
A resubmitted (resumed) run overwrites run_card.json and appends the same card to run_cards.jsonl, so
the history of every submission stays.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from training.recipes import load_recipe, recipe_directives

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "transformers", "llamafactory", "deepspeed", "peft", "accelerate", "datasets")
LAUNCH_ENV = ("NNODES", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT", "RDZV_ID")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions (from package metadata: no heavy imports); None when not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(repo: Path = REPO) -> dict[str, object]:
    """Commit and dirty flag of the repository; None values outside a git checkout."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=all") if commit else None
    changed = status.splitlines() if status else []
    return {"commit": commit, "dirty": bool(changed) if status is not None else None,
            "changed_files": [line[3:] for line in changed[:50]],
            "untracked_files": sum(line.startswith("??") for line in changed)}


def slurm_nodes(env: dict[str, str]) -> list[str]:
    """The job's hosts, expanded (`scontrol show hostnames`), or [] outside Slurm."""
    nodelist = env.get("SLURM_JOB_NODELIST", "")
    if not nodelist:
        return []
    try:
        done = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                              timeout=20)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return [nodelist]


def dataset_card_info(recipe: dict) -> dict[str, object]:
    """Path and SHA-256 of the dataset card next to the recipe's datasets (None when absent)."""
    card = Path(str(recipe.get("dataset_dir", "data"))) / "dataset_card.json"
    return {"path": str(card.resolve()), "sha256": sha256_of(card) if card.is_file() else None}


def _dataset_names(recipe: dict) -> list[str]:
    return [n for key in ("dataset", "eval_dataset")
            for n in filter(None, (n.strip() for n in str(recipe.get(key) or "").split(",")))]


def dataset_files(recipe: dict) -> dict[str, str | None]:
    """{path: sha256} of dataset_info.json and of each dataset / eval_dataset file the run reads (None: missing)."""
    root = Path(str(recipe.get("dataset_dir", "data")))
    info_file = root / "dataset_info.json"
    files = [info_file]
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
        files += [root / info[n]["file_name"] for n in _dataset_names(recipe) if "file_name" in info.get(n, {})]
    except (OSError, ValueError):
        pass
    return {str(f.resolve()): sha256_of(f) if f.is_file() else None for f in files}


def model_info(recipe: dict, env: dict[str, str]) -> dict[str, object]:
    """Base model id, the revision asked for (model_revision) and the commit it resolved to when known.

    A hub id resolves through the local cache (HF_HOME/hub/models--ORG--NAME/refs/REVISION, written by the
    pre-download step); a folder inside a cache snapshot gives the snapshot's commit.
    """
    model = str(recipe.get("model_name_or_path") or "")
    revision = str(recipe.get("model_revision") or "main")
    resolved = revision if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision) else None
    path = Path(model)
    if path.is_dir():
        parts = path.resolve().parts
        if "snapshots" in parts[:-1]:
            resolved = parts[parts.index("snapshots") + 1]
        config = path / "config.json"
        return {"id": model, "revision": revision, "resolved_commit": resolved, "local": True,
                "config_sha256": sha256_of(config) if config.is_file() else None}
    hub = Path(env.get("HF_HUB_CACHE") or Path(env.get("HF_HOME", Path.home() / ".cache/huggingface")) / "hub")
    ref = hub / f"models--{model.replace('/', '--')}" / "refs" / revision
    if resolved is None and ref.is_file():
        resolved = ref.read_text(encoding="utf-8").strip()
    return {"id": model, "revision": revision, "resolved_commit": resolved, "local": False}


def effective_batch(recipe_path: Path, recipe: dict, env: dict[str, str]) -> dict[str, object]:
    """The effective batch of this launch (per device x accumulation x GPUs per node x nodes) and the target."""
    per_device = int(recipe.get("per_device_train_batch_size", 8))
    steps = int(recipe.get("gradient_accumulation_steps", 1))
    nodes, gpus = int(env.get("NNODES") or 1), int(env.get("NPROC_PER_NODE") or 1)
    target = recipe_directives(recipe_path).get("effective_batch")
    target = int(env.get("EFFECTIVE_BATCH") or target or 0) or None
    return {"value": per_device * steps * gpus * nodes, "target": target,
            "per_device_train_batch_size": per_device, "gradient_accumulation_steps": steps,
            "gpus_per_node": gpus, "nodes": nodes}


def missing_dataset_files(recipe: dict) -> list[str]:
    """What the recipe's datasets need but is not there: dataset_dir, dataset_info.json, each data file."""
    root = Path(str(recipe.get("dataset_dir", "data")))
    info_file = root / "dataset_info.json"
    if not root.is_dir():
        return [f"dataset_dir {root}: no such folder (build it: python -m dataset_builders.build --out ...)"]
    if not info_file.is_file():
        return [f"{info_file}: missing (not a dataset folder made by the builder?)"]
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"{info_file}: unreadable ({type(exc).__name__}: {exc})"]
    if not isinstance(info, dict):
        return [f"{info_file}: not a JSON object of datasets"]
    missing = []
    for key in ("dataset", "eval_dataset"):
        for name in filter(None, (n.strip() for n in str(recipe.get(key) or "").split(","))):
            if name not in info:
                missing.append(f"{key} {name!r}: not in {info_file} (has: {', '.join(sorted(info))})")
            elif "file_name" in info[name] and not (root / info[name]["file_name"]).exists():
                missing.append(f"{key} {name!r}: data file {root / info[name]['file_name']} is missing")
    return missing


def make_card(recipe_path: Path, overrides: list[str], env: dict[str, str] | None = None) -> dict:
    env = dict(os.environ if env is None else env)
    recipe = load_recipe(recipe_path, overrides)
    return {
        "recipe_path": str(Path(recipe_path).resolve()),
        "overrides": list(overrides),
        "recipe": recipe,
        "dataset_card": dataset_card_info(recipe),
        "dataset_files": dataset_files(recipe),
        "model": model_info(recipe, env),
        "git": git_state(),
        "slurm": {"job_id": env.get("SLURM_JOB_ID"), "job_name": env.get("SLURM_JOB_NAME"),
                  "restart_count": env.get("SLURM_RESTART_COUNT"),
                  "nodes": slurm_nodes(env), "nnodes": env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES"),
                  "gpus_on_node": env.get("SLURM_GPUS_ON_NODE"), "job_gpus": env.get("SLURM_JOB_GPUS"),
                  "cpus_per_task": env.get("SLURM_CPUS_PER_TASK")},
        "effective_batch": effective_batch(recipe_path, recipe, env),
        "launcher": {k: env.get(k) for k in LAUNCH_ENV},
        "resume_from_checkpoint": recipe.get("resume_from_checkpoint"),
        "versions": {"python": sys.version.split()[0], **package_versions()},
        "time_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def write_card(card: dict, out: Path) -> None:
    """out (atomically), plus one line in run_cards.jsonl beside it (the history of submissions)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(card, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    with open(out.with_name("run_cards.jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(card, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.run_card", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", required=True, type=Path, help="the recipe YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override, as passed to llamafactory-cli train (repeatable)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, help="write the card here (JSON)")
    action.add_argument("--check-data", action="store_true",
                        help="only check that the recipe's dataset files exist (exit 2 with a list if not)")
    action.add_argument("--get", metavar="KEY", help="only print the resolved recipe's value of KEY")
    ns = parser.parse_args(argv)
    try:
        if ns.check_data or ns.get:
            recipe = load_recipe(ns.recipe, ns.overrides)
            if ns.get:
                print(recipe.get(ns.get, ""))
                return 0
            missing = missing_dataset_files(recipe)
            for line in missing:
                print(f"error: {line}", file=sys.stderr)
            return 2 if missing else 0
        card = make_card(ns.recipe, ns.overrides)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_card(card, ns.out)
    print(f"run card: {ns.out} (dataset card sha256 {card['dataset_card']['sha256'] or 'missing'}, "
          f"commit {card['git']['commit'] or 'unknown'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
