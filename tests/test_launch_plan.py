"""training.launch_plan and training.checkpoints: effective batch on any allocation, resume from a complete checkpoint.

Fast, no training: real recipes and checkpoint folders laid out as the HF Trainer / DeepSpeed write them.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from training.checkpoints import ResumeError, choose_checkpoint
from training.launch_plan import PlanError, accumulation_for, main, plan
from training.recipes import RECIPES_ROOT, find_recipes, recipe_directives

MAIN = RECIPES_ROOT / "qwen3vl_32b" / "lora_sft_zero3.yaml"


def test_accumulation_meets_the_target_exactly_or_refuses():
    assert accumulation_for(4, 1, 4, 1) == 1 and accumulation_for(4, 1, 1, 1) == 4 and accumulation_for(4, 2, 1, 1) == 2
    with pytest.raises(PlanError, match=r"target effective batch 4 cannot be met exactly on 1 node\(s\) x 8 GPU"):
        accumulation_for(4, 1, 8, 1)
    with pytest.raises(PlanError, match="per_device_train_batch_size 2 = 6"):
        accumulation_for(4, 1, 3, 2)


def test_every_production_training_recipe_states_batch_4_and_shares_the_data_cache():
    for recipe in find_recipes():
        text = recipe.read_text()
        if "tiny" in recipe.parts or "export_dir" in text:
            continue
        assert recipe_directives(recipe) == {"effective_batch": "4"}, recipe
        assert "\ndata_shared_file_system: true" in text and "\nmodel_revision:" in text, recipe


def test_plan_derives_accumulation_and_refuses_a_conflicting_override(tmp_path, capsys):
    out = f"output_dir={tmp_path / 'run'}"
    assert plan(MAIN, [out], nodes=1, gpus_per_node=4)[0] == ["gradient_accumulation_steps=1"]
    assert plan(MAIN, [out], nodes=2, gpus_per_node=1)[0] == ["gradient_accumulation_steps=2"]
    with pytest.raises(PlanError, match="needs 4 on this allocation"):
        plan(MAIN, [out, "gradient_accumulation_steps=1"], nodes=1, gpus_per_node=1)
    assert main(["--recipe", str(MAIN), "--set", out, "--nodes", "1", "--gpus-per-node", "8"]) == 2
    assert "cannot be met exactly on 1 node(s) x 8 GPU(s)" in capsys.readouterr().err


def _safetensors(path: Path, payload: int = 16, cut: int = 0) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [payload // 4], "data_offsets": [0, payload]}}).encode()
    path.write_bytes((struct.pack("<Q", len(header)) + header + b"\0" * payload)[:-cut or None])


def _checkpoint(root: Path, step: int, ranks: int | None = None, state: bool = True, cut: int = 0) -> Path:
    ckpt = root / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    _safetensors(ckpt / "adapter_model.safetensors", cut=cut)
    if state:
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if ranks:
        (ckpt / "latest").write_text(f"global_step{step}")
        (ckpt / f"global_step{step}").mkdir()
        for r in range(ranks):
            for kind in ("zero_pp_rank_{}_mp_rank_00_model_states.pt",
                         "bf16_zero_pp_rank_{}_mp_rank_00_optim_states.pt"):
                (ckpt / f"global_step{step}" / kind.format(r)).write_bytes(b"PK\3\4")
    return ckpt


def test_newest_complete_checkpoint_is_chosen_and_the_others_named(tmp_path):
    good = _checkpoint(tmp_path, 2, ranks=2)
    _checkpoint(tmp_path, 3, ranks=2, cut=5)
    _checkpoint(tmp_path, 4, ranks=2, state=False)
    broken = _checkpoint(tmp_path, 5, ranks=2)
    (broken / "global_step5" / "zero_pp_rank_1_mp_rank_00_model_states.pt").unlink()
    choice = choose_checkpoint(tmp_path, world_size=2)
    assert choice.checkpoint == good and choice.saved_world_size == 2
    reasons = {p.name: why for p, why in choice.skipped}
    assert reasons["checkpoint-5"] == ("global_step5 lacks state files of some ranks (model states of ranks [0], "
                                       "optimizer states of ranks [0, 1])")
    assert reasons["checkpoint-4"] == "no trainer_state.json (the save did not finish)"
    assert reasons["checkpoint-3"].startswith("adapter_model.safetensors is truncated")
    assert choose_checkpoint(tmp_path / "none").checkpoint is None


def test_zero_checkpoint_at_another_world_size_is_refused(tmp_path):
    _checkpoint(tmp_path, 2, ranks=4)
    with pytest.raises(ResumeError, match="saved by DeepSpeed ZeRO on 4 processes, this job has 2"):
        choose_checkpoint(tmp_path, world_size=2)
    assert choose_checkpoint(tmp_path, world_size=4).checkpoint.name == "checkpoint-2"
    _checkpoint(tmp_path / "plain", 7)  # no DeepSpeed state (DDP / one GPU): any world size resumes
    assert choose_checkpoint(tmp_path / "plain", world_size=8).checkpoint.name == "checkpoint-7"


def test_zero2_checkpoint_is_complete(tmp_path):
    """ZeRO-1/2 write one mp_rank_00_model_states.pt (deepspeed engine._get_ckpt_name) and per-rank optimizer states:
    a complete checkpoint, not one that "lacks state files of some ranks" (skipped, so the run started over)."""
    ckpt = _checkpoint(tmp_path, 10)
    (ckpt / "latest").write_text("global_step10")
    tag = ckpt / "global_step10"
    tag.mkdir()
    (tag / "mp_rank_00_model_states.pt").write_bytes(b"PK\3\4")
    for r in range(2):
        (tag / f"bf16_zero_pp_rank_{r}_mp_rank_00_optim_states.pt").write_bytes(b"PK\3\4")
    choice = choose_checkpoint(tmp_path, world_size=2)
    assert choice.checkpoint == ckpt and choice.saved_world_size == 2 and not choice.skipped
    (tag / "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt").unlink()
    assert choose_checkpoint(tmp_path, world_size=2).skipped[0][1] == (
        "global_step10 lacks optimizer states of some ranks (it has ranks [1])")


def test_only_incomplete_checkpoints_start_fresh_in_llamafactory_too(tmp_path, hf_env, monkeypatch):
    """A job killed while saving its first checkpoint: the plan starts afresh, and so must LlamaFactory, whose parser
    otherwise resumes from the newest checkpoint-* folder itself (the incomplete one) and the job fails loading it."""
    from training.recipe_parser import run_llamafactory_parser
    from training.recipes import load_recipe

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    _checkpoint(tmp_path / "run", 1000, state=False)  # weights written, trainer_state.json not yet
    recipe = RECIPES_ROOT / "qwen3vl_2b" / "lora_sft_ddp.yaml"  # no overwrite_output_dir: LlamaFactory's default
    given = [f"output_dir={tmp_path / 'run'}", "bf16=false"]
    add, notes = plan(recipe, given, nodes=1, gpus_per_node=1)
    assert not any(a.startswith("resume_from_checkpoint=") for a in add)
    assert any("checkpoint-1000: no trainer_state.json" in n for n in notes)
    parsed, problem = run_llamafactory_parser(load_recipe(recipe, given + add), "train")
    assert problem is None, problem
    assert parsed[2].resume_from_checkpoint is None  # training_args: not the incomplete checkpoint-1000
    # a user's own choice stays
    assert "overwrite_output_dir=true" not in plan(recipe, [*given, "overwrite_output_dir=false"], 1, 1)[0]


def test_a_worker_leaves_after_its_exit_handlers_without_the_runtime_teardown(tmp_path):
    """training.launch ends a finished worker with os._exit (the C++ teardown that aborted ZeRO-3 runs is
    skipped) but only after the atexit handlers ran and the output was flushed, with exit status 0."""
    import subprocess
    import sys

    marker = tmp_path / "atexit_ran"
    script = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))\n"
        "print('trained', end='')  # no newline: still buffered when the process leaves\n"
        "sys.stderr.write('warned')\n"
        "from training.launch import leave_after_training\n"
        "leave_after_training()\n"
        "print('not reached')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "trained"
    assert proc.stderr.endswith("warned")
    assert marker.read_text() == "yes"


def test_predownload_names_a_missing_or_broken_recipe(tmp_path, capsys):
    from training import predownload

    assert predownload.main([str(tmp_path / "nope.yaml")]) == 2
    assert f"{tmp_path / 'nope.yaml'}: no such recipe" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_name_or_path: [unclosed\n")
    assert predownload.main([str(broken)]) == 2
    assert f"{broken}: not valid YAML" in capsys.readouterr().err
