"""Which checkpoint a training run resumes from: the newest COMPLETE one in output_dir, saved at this world size.

Reads output_dir/checkpoint-*/ (nothing is written). A checkpoint is complete when
- trainer_state.json parses and has global_step: the HF Trainer writes it after the weights, the optimizer and
  the RNG states (transformers 5.6 ``Trainer._save_checkpoint``: save_model, _save_optimizer_and_scheduler,
  _save_rng_state, then state.save_to_json), so a job killed while saving leaves a folder without it;
- the weights are there and readable: adapter_model.safetensors / model.safetensors (header and data length
  checked), or a sharded index whose shards all exist, or a *.bin;
- under DeepSpeed: the folder named by `latest` holds a model-states and (unless save_only_model) an
  optimizer-states file per data-parallel rank ([bf16_]zero_pp_rank_R_mp_rank_00_{model,optim}_states.pt,
  R = 0..N-1; ZeRO-1/2: one mp_rank_00_model_states.pt and the per-rank optimizer states), each a non-empty zip
  (torch.save's format).

World size: ZeRO-3 shards the optimizer state over the N ranks that saved it. DeepSpeed 0.19.8 cannot load it
at another world size (deepspeed/runtime/zero/stage3.py load_state_dict: "ZeRO-3 elastic checkpointing is
deprecated and unsupported. Use Universal Checkpointing instead."). Its universal checkpoint
(deepspeed/checkpoint/ds_to_universal.py, which has a ZeRO-3 path, loaded with "checkpoint": {"load_universal":
true}) is not wired into the HF Trainer's resume for a LoRA (PEFT) model, so we refuse instead of converting.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors", "adapter_model.bin", "pytorch_model.bin")
_RANK_FILE = re.compile(r"^(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_\d+_(model|optim)_states\.pt$")
# ZeRO-0/1/2 keep the whole model in one file (deepspeed/runtime/engine.py 0.19 _get_ckpt_name: the per-rank
# zero_pp_rank_R_ model file is ZeRO-3's only); their optimizer states are still one file per rank.
_SHARED_MODEL_FILE = re.compile(r"^mp_rank_\d+_model_states\.pt$")


class ResumeError(Exception):
    """The run cannot resume as asked (e.g. another world size than the ZeRO-3 checkpoint's)."""


@dataclass
class Choice:
    """The checkpoint to resume from (None: start fresh) and the newer ones skipped, with the reason."""

    checkpoint: Path | None
    saved_world_size: int | None = None
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _step(path: Path) -> int:
    match = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(match.group(1)) if match else -1


def _safetensors_problem(path: Path) -> str | None:
    """None when the file's header parses and the file is as long as the header says."""
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        if path.stat().st_size < 8 + n + end:
            return f"{path.name} is truncated ({path.stat().st_size} bytes, header says {8 + n + end})"
    except (OSError, struct.error, ValueError, KeyError, TypeError) as exc:
        return f"{path.name} is unreadable ({type(exc).__name__}: {exc})"
    return None


def _zip_problem(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return None if fh.read(2) == b"PK" else f"{path.name} is not a torch.save file (empty or truncated)"
    except OSError as exc:
        return f"{path.name} is unreadable ({exc})"


def weights_problem(ckpt: Path) -> str | None:
    for name in WEIGHT_FILES:
        if (ckpt / name).is_file():
            return _safetensors_problem(ckpt / name) if name.endswith(".safetensors") else _zip_problem(ckpt / name)
    for index in ckpt.glob("*.safetensors.index.json"):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError) as exc:
            return f"{index.name} is unreadable ({exc})"
        for shard in sorted(shards):
            problem = _safetensors_problem(ckpt / shard) if (ckpt / shard).is_file() else f"{shard} is missing"
            if problem:
                return problem
        return None
    return f"no weights ({' / '.join(WEIGHT_FILES)})"


def deepspeed_world_size(ckpt: Path) -> tuple[int | None, str | None]:
    """(ranks that saved the DeepSpeed state, problem); (None, None) when the checkpoint has no DeepSpeed state."""
    latest = ckpt / "latest"
    if not latest.is_file():
        tags = [p for p in ckpt.glob("global_step*") if p.is_dir()]
        return (None, None) if not tags else (None, "DeepSpeed state without its `latest` file")
    tag_dir = ckpt / latest.read_text(encoding="utf-8").strip()
    if not tag_dir.is_dir():
        return None, f"`latest` names {tag_dir.name}, which is missing"
    found: dict[str, set[int]] = {"model": set(), "optim": set()}
    for p in tag_dir.iterdir():
        if m := _RANK_FILE.match(p.name):
            found[m.group(2)].add(int(m.group(1)))
    if not found["model"] and any(_SHARED_MODEL_FILE.match(p.name) for p in tag_dir.iterdir()):
        optim = sorted(found["optim"])  # ZeRO-1/2: the ranks are those of the optimizer states
        if optim != list(range(len(optim))):
            return None, f"{tag_dir.name} lacks optimizer states of some ranks (it has ranks {optim})"
        for p in sorted(tag_dir.iterdir()):
            if p.suffix == ".pt" and (problem := _zip_problem(p)):
                return None, f"{tag_dir.name}/{problem}"
        return len(optim) or None, None
    every = found["model"] | found["optim"]
    ranks = sorted(found["model"])
    if not every or ranks != list(range(len(every))) or (found["optim"] and found["optim"] != set(ranks)):
        return None, (f"{tag_dir.name} lacks state files of some ranks (model states of ranks {ranks}, optimizer "
                      f"states of ranks {sorted(found['optim'])})")
    for p in sorted(tag_dir.iterdir()):
        if p.suffix == ".pt" and (problem := _zip_problem(p)):
            return None, f"{tag_dir.name}/{problem}"
    return len(ranks), None


def completeness_problem(ckpt: Path) -> str | None:
    """Why this checkpoint cannot be resumed from, or None when it is complete."""
    try:
        state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
        int(state["global_step"])
    except FileNotFoundError:
        return "no trainer_state.json (the save did not finish)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"trainer_state.json is unreadable ({type(exc).__name__})"
    return weights_problem(ckpt) or deepspeed_world_size(ckpt)[1]


def choose_checkpoint(output_dir: Path, world_size: int | None = None) -> Choice:
    """The newest complete checkpoint; raises ResumeError when it was saved by ZeRO at another world size."""
    output_dir = Path(output_dir)
    candidates = sorted((p for p in output_dir.glob("checkpoint-*") if p.is_dir() and _step(p) >= 0),
                        key=_step, reverse=True)
    choice = Choice(None)
    for ckpt in candidates:
        problem = completeness_problem(ckpt)
        if problem:
            choice.skipped.append((ckpt, problem))
            continue
        saved, _ = deepspeed_world_size(ckpt)
        choice.checkpoint, choice.saved_world_size = ckpt, saved
        if saved is not None and world_size is not None and saved != world_size:
            raise ResumeError(
                f"{ckpt} was saved by DeepSpeed ZeRO on {saved} processes, this job has {world_size}: ZeRO-3 "
                f"optimizer shards cannot be loaded at another world size (DeepSpeed 0.19: 'ZeRO-3 elastic "
                f"checkpointing is deprecated and unsupported'). Resubmit with the same nodes x GPUs "
                f"({saved} processes), or start fresh in a new output_dir (--set output_dir=...), or convert it "
                f"yourself with deepspeed/checkpoint/ds_to_universal.py (not supported here for LoRA)")
        break
    return choice
