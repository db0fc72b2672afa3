"""Load LlamaFactory YAML recipes the way `llamafactory-cli train recipe.yaml key=value ...` does.

One loader for the recipe checker, the Slurm scripts, the run card and the smoke run. It reads with OmegaConf's
YAML loader, as LlamaFactory's read_args does (llamafactory/hparams/parser.py 0.9.5: OmegaConf.load for the file,
OmegaConf.from_cli for the key=value pairs), not yaml.safe_load: that loader reads `1e-5` as a float (safe_load: the
string "1e-5") and refuses a key given twice (safe_load: the last one wins).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

RECIPES_ROOT = Path(__file__).resolve().parents[1] / "llamafactory_configs"

# vLLM's default --max-lora-rank is 16; slurm/serve.sh passes this value, and the recipe check refuses
# a recipe whose lora_rank exceeds it (the adapter could not be served).
DEFAULT_MAX_LORA_RANK = 64


def find_recipes(root: Path = RECIPES_ROOT) -> list[Path]:
    """Every YAML recipe below root, recursively, sorted."""
    return sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")])


def _read_yaml(text: str) -> object:
    """A YAML document or value as OmegaConf (and so LlamaFactory) reads it."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.from_dotlist([f"value={text}"]))["value"]


def parse_override(text: str) -> tuple[str, object]:
    """'key=value' -> (key, YAML-typed value), as LlamaFactory's CLI overrides are read."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r} is not of the form key=value")
    return key.strip(), _read_yaml(value) if value != "" else ""


def load_recipe(path: Path, overrides: list[str] | dict | None = None) -> dict:
    """The recipe's keys with overrides applied; errors name the file."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(path)
    try:
        data = OmegaConf.to_container(OmegaConf.load(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such recipe") from None
    except (yaml.YAMLError, OmegaConfBaseException) as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: a recipe must be a mapping of LlamaFactory arguments")
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides or [])
    for key, value in items:
        data[key] = value
    return data


def recipe_directives(path: Path) -> dict[str, str]:
    """Our settings that LlamaFactory must not see, from `# fracto: key=value` comment lines of the recipe.

    LlamaFactory rejects unknown YAML keys, so a recipe states e.g. its target effective batch as a comment
    line `# fracto: effective_batch=4` (read by slurm/train.sh through training.launch_plan).
    """
    found: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#\s*fracto:\s*(.*)$", line.strip())
        if match:
            for item in match.group(1).split():
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise ValueError(f"{path}: `# fracto:` line {line.strip()!r}: expected key=value items")
                found[key] = value
    return found
