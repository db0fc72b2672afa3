"""LlamaFactory's own argument parser run on a recipe, without loading any model (layer 1 of the recipe check).

Holds: recipe_kind (which LlamaFactory command a recipe is for) and run_llamafactory_parser (the parsed
argument dataclasses, or LlamaFactory's message with a "did you mean" hint). It reads nothing from disk but
what LlamaFactory's parser reads (the DeepSpeed JSON), and writes nothing. training.recipe_check uses it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import os
import re
import socket
from collections.abc import Iterator
from typing import Any

TRAIN_KEYS = ("do_train", "do_eval", "do_predict", "stage", "output_dir", "dataset", "eval_dataset", "deepspeed")


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


def _defaults() -> dict[str, Any]:
    """LlamaFactory's default for every key (used when the parser could not run)."""
    from llamafactory.hparams import DataArguments, FinetuningArguments, ModelArguments

    out: dict[str, Any] = {}
    for cls in (ModelArguments, DataArguments, FinetuningArguments):
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
    return out
