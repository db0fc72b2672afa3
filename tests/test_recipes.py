"""Every recipe under llamafactory_configs/ passes LlamaFactory's own parser and our rules; bad ones fail loudly.

Real parts only: LlamaFactory 0.9.5's hparams parser (get_train_args / get_infer_args, with the DeepSpeed
ZeRO-3 config and a real one-process gloo group), the tiny Qwen3-VL folder and a real builder output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.recipe_check import budget_image_tokens, check_recipe, main, recipe_kind
from training.recipes import (
    DEFAULT_MAX_LORA_RANK,
    RECIPES_ROOT,
    find_recipes,
    load_recipe,
)

REPO = Path(__file__).resolve().parents[1]
RECIPES = find_recipes()
MAIN = RECIPES_ROOT / "qwen3vl_32b" / "lora_sft_zero3.yaml"
CHECKED: list[Path] = []  # filled by test_recipe_accepted; test_no_recipe_skipped compares it with RECIPES


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch, hf_env):
    """Recipes name deepspeed/dataset paths relative to the repository root, as slurm/train.sh runs them."""
    monkeypatch.chdir(REPO)


@pytest.fixture(scope="module")
def dataset_dir(built_qa) -> Path:
    """The builder's dataset with --qa (a superset of the default one: the Q&A mixture recipes need fracto_qa_*)."""
    return built_qa[0] / "dataset"


def minimal_overrides(recipe_path: Path, tiny_dir: Path, tmp_path: Path, dataset_dir: Path) -> dict:
    """Only what a machine without the weights, a GPU or the cluster's paths must change."""
    recipe = load_recipe(recipe_path)
    kind = recipe_kind(recipe)
    overrides: dict = {"model_name_or_path": str(tiny_dir)}
    if kind == "export":
        overrides["export_dir"] = str(tmp_path / "export")
    elif kind == "train":
        overrides["output_dir"] = str(tmp_path / "out")
    if recipe.get("bf16"):
        overrides["bf16"] = False
    if "dataset_dir" in recipe:
        overrides["dataset_dir"] = str(dataset_dir)
    return overrides


# ----------------------------------------------------------------------------- every recipe


def test_recipes_found_recursively():
    walked = sorted(Path(root) / name for root, _, files in os.walk(RECIPES_ROOT)
                    for name in files if name.endswith((".yaml", ".yml")))
    assert RECIPES == walked
    rel = {p.relative_to(RECIPES_ROOT).as_posix() for p in RECIPES}
    assert {"qwen3vl_32b/lora_sft_zero3.yaml", "qwen3vl_32b/lora_sft_zero3_offload.yaml",
            "qwen3vl_32b/ablation_no_manual.yaml", "qwen3vl_32b/ablation_no_rotation.yaml",
            "qwen3vl_32b/merge_lora.yaml", "qwen3vl_8b/lora_sft_zero3.yaml",
            "qwen3vl_2b/lora_sft_ddp.yaml"} <= rel
    assert all("/" in r for r in rel), "every recipe lives in a model/ folder"


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.relative_to(RECIPES_ROOT).as_posix() for p in RECIPES])
def test_recipe_accepted(recipe, tiny_dir, tmp_path, dataset_dir):
    before = dict(os.environ)
    report = check_recipe(recipe, minimal_overrides(recipe, tiny_dir, tmp_path, dataset_dir))
    assert report.ok, report.summary()
    assert dict(os.environ) == before, "the check must restore the environment"
    CHECKED.append(recipe)


def test_no_recipe_skipped(request):
    """Runs after the parametrized tests: each recipe found must have been checked and passed."""
    selected = [item for item in request.session.items if getattr(item, "originalname", "") == "test_recipe_accepted"]
    if len(selected) != len(RECIPES):
        pytest.skip(f"partial run: {len(selected)} of {len(RECIPES)} recipe tests selected")
    assert RECIPES
    assert sorted(CHECKED) == RECIPES, f"not checked: {sorted(set(RECIPES) - set(CHECKED))}"


def test_main_recipe_values():
    r = load_recipe(MAIN)
    assert r["model_name_or_path"] == "Qwen/Qwen3-VL-32B-Instruct"
    assert (r["lora_rank"], r["lora_alpha"], r["lora_target"]) == (16, 32, "all")
    assert r["freeze_vision_tower"] is True and r["freeze_multi_modal_projector"] is True
    assert (r["learning_rate"], r["lr_scheduler_type"], r["warmup_ratio"], r["num_train_epochs"]) == (1e-5, "cosine", 0.1, 3)
    assert r["per_device_train_batch_size"] * r["gradient_accumulation_steps"] * 4 == 4  # x 4 GPUs (header)
    assert "--gres=gpu:4" in MAIN.read_text()
    assert (r["dataset"], r["eval_dataset"], r["template"]) == ("fracto_train", "fracto_val", "qwen3_vl_nothink")
    assert (r["eval_strategy"], r["save_strategy"], r["eval_steps"]) == ("steps", "steps", r["save_steps"])
    assert (r["early_stopping_steps"], r["load_best_model_at_end"], r["metric_for_best_model"],
            r["greater_is_better"]) == (2, True, "eval_loss", False)
    assert r["bf16"] is True and r["deepspeed"] == "llamafactory_configs/deepspeed/ds_z3.json"
    assert (r["image_max_pixels"], r["cutoff_len"]) == (589824, 2048)
    assert r["output_dir"] == "saves/qwen3vl_32b/lora_sft_zero3" and r["report_to"] == "none"
    assert load_recipe(RECIPES_ROOT / "qwen3vl_32b/ablation_no_manual.yaml")["dataset"] == "fracto_train_no_manual"
    assert load_recipe(RECIPES_ROOT / "qwen3vl_32b/ablation_no_rotation.yaml")["dataset"] == "fracto_train_no_rotation"
    merge = load_recipe(RECIPES_ROOT / "qwen3vl_32b/merge_lora.yaml")
    assert (merge["export_device"], merge["template"], merge["adapter_name_or_path"]) == (
        "cpu", "qwen3_vl_nothink", r["output_dir"])


def test_every_yaml_explains_itself():
    for path in RECIPES:
        if path.parent.name == "tiny":
            continue  # another engineer's recipes
        text = path.read_text()
        assert text.startswith("# "), path
        header = text.split("\n### ")[0]
        assert "llamafactory_configs/" + path.relative_to(RECIPES_ROOT).as_posix() in header, path
        assert ("sbatch" in header or "llamafactory-cli export" in header), path
        kind = recipe_kind(load_recipe(path))
        sections = ["### model", "### method"] + (
            ["### dataset", "### output", "### train", "### eval"] if kind == "train" else ["### export"])
        assert [line for line in text.splitlines() if line.startswith("### ")] == sections, path
        if kind == "train":
            assert "--set" in header and "Effective batch" in header, path


@pytest.mark.parametrize("name", ["ds_z3.json", "ds_z3_offload.json"])
def test_deepspeed_json_leaves_batch_and_precision_to_the_yaml(name):
    config = json.loads((RECIPES_ROOT / "deepspeed" / name).read_text())
    for key in ("train_batch_size", "gradient_accumulation_steps", "train_micro_batch_size_per_gpu",
                "gradient_clipping"):
        assert config[key] == "auto", key
    assert config["bf16"]["enabled"] == "auto" and config["fp16"]["enabled"] == "auto"
    assert config["zero_optimization"]["stage"] == 3
    offload = "offload_param" in config["zero_optimization"]
    assert offload == (name == "ds_z3_offload.json")


def test_readme_lists_every_recipe():
    readme = (RECIPES_ROOT / "README.md").read_text()
    for path in RECIPES + sorted((RECIPES_ROOT / "deepspeed").glob("*.json")):
        assert path.relative_to(RECIPES_ROOT).as_posix() in readme, path
    assert "DEFAULT_MAX_LORA_RANK" in readme and "--max-lora-rank" in readme and str(DEFAULT_MAX_LORA_RANK) in readme
    assert "qwen3_vl_nothink" in readme and "589,824" in readme


# ----------------------------------------------------------------------------- facts the check relies on


def test_parser_never_loads_the_model(dataset_dir, tmp_path):
    """A hub id that is not downloaded (offline) passes: LlamaFactory's parser only needs the name."""
    import torch.distributed as dist
    from transformers.integrations import is_deepspeed_zero3_enabled

    report = check_recipe(MAIN, {"bf16": False, "output_dir": str(tmp_path / "o"), "dataset_dir": str(dataset_dir)})
    assert report.ok, report.summary()
    assert report.facts["deepspeed"] == "ZeRO-3" and report.facts["largest_sample"] > 0
    assert not dist.is_initialized() and not is_deepspeed_zero3_enabled()  # torn down after the parse
    assert not (tmp_path / "o").exists()


def test_budget_image_tokens():
    # 768x768 budget -> 24x24 = 576 for a square; 4:3 rounds up a little (the builder's 1024x768 example: 588)
    assert budget_image_tokens(589_824, 1024) == 588
    assert 70 <= budget_image_tokens(65_536, 1024) < 96  # 4:3 already gives 70 > 64 = 256^2 / 32^2


def test_recipe_is_read_as_llamafactory_reads_it(tiny_dir, tmp_path):
    """OmegaConf's YAML, as LlamaFactory's read_args: `1e-1` is a float (yaml.safe_load: a string, which the parser
    then refused: "'<' not supported between instances of 'str' and 'int'"), a key given twice is an error
    (yaml.safe_load kept the last one, and the check passed a recipe `llamafactory-cli train` refuses)."""
    from omegaconf import OmegaConf

    text = (RECIPES_ROOT / "tiny" / "lora_sft_cpu.yaml").read_text()
    sci = tmp_path / "sci.yaml"
    sci.write_text(text.replace("learning_rate: 1.0e-2", "learning_rate: 1e-2") + "warmup_ratio: 1e-1\n")
    assert load_recipe(sci) == OmegaConf.to_container(OmegaConf.load(sci))  # what LlamaFactory trains with
    assert load_recipe(sci)["warmup_ratio"] == 0.1 and load_recipe(sci, ["max_grad_norm=5e-1"])["max_grad_norm"] == 0.5
    report = check_recipe(sci, {"model_name_or_path": str(tiny_dir), "output_dir": str(tmp_path / "o")},
                          check_dataset=False)
    assert report.ok, report.summary()
    twice = tmp_path / "twice.yaml"
    twice.write_text(text + "lora_rank: 16\n")
    report = check_recipe(twice, {"model_name_or_path": str(tiny_dir)}, check_dataset=False)
    assert not report.ok and f"{twice}: not valid YAML" in report.summary() and "lora_rank" in report.summary()


# ----------------------------------------------------------------------------- bad input


def _run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def base_args(tiny_dir, tmp_path, dataset_dir):
    return [MAIN, "--set", f"model_name_or_path={tiny_dir}", "--set", f"output_dir={tmp_path / 'out'}",
            "--set", "bf16=false", "--set", f"dataset_dir={dataset_dir}"]


def test_good_recipe_one_ok_line(capsys, base_args):
    code, text = _run(capsys, *base_args)
    assert code == 0, text
    assert text.strip().count("\n") == 0 and text.startswith("recipe_check: OK")


@pytest.mark.parametrize("override, expected", [
    ("lora_rnk=16", ["lora_rnk", "lora_rank", "LlamaFactory rejected"]),                    # typo'd key
    ("dataset=fracto_trian", ["'fracto_trian' is not in", "dataset_info.json"]),            # missing dataset
    ("eval_dataset=fracto_holdout", ["eval_dataset 'fracto_holdout'"]),
    ("template=qwen3_vl", ["template 'qwen3_vl' is wrong", "qwen3_vl_nothink"]),            # wrong template
    ("template=qwen3_vl_nothnik", ["not a LlamaFactory template", "qwen3_vl_nothink"]),
    ("cutoff_len=512", ["cutoff_len 512 is too small for the image budget",                 # too small
                        "cutoff_len 512 is smaller than the dataset's largest sample"]),
    ("lora_rank=128", ["lora_rank 128 exceeds the serving max_lora_rank 64"]),              # > max rank
    ("image_max_pixels=1048576", ["image_max_pixels 1,048,576 differs from the dataset card's 589,824"]),
    ("predict_with_generate=true", ["predict_with_generate is refused under DeepSpeed ZeRO-3"]),
    ("load_best_model_at_end=false", ["early_stopping_steps needs load_best_model_at_end"]),
])
def test_bad_recipe_named(capsys, base_args, override, expected):
    code, text = _run(capsys, *base_args, "--set", override)
    assert code == 2, text
    for fragment in expected:
        assert fragment in text, (fragment, text)


def test_wrong_template_for_hub_instruct_model(capsys, base_args):
    code, text = _run(capsys, *base_args, "--set", "model_name_or_path=Qwen/Qwen3-VL-8B-Instruct",
                      "--set", "template=qwen2_vl")
    assert code == 2 and "wrong for the Instruct model Qwen/Qwen3-VL-8B-Instruct" in text


def test_max_lora_rank_flag(capsys, base_args):
    code, text = _run(capsys, *base_args, "--max-lora-rank", "8")
    assert code == 2 and "lora_rank 16 exceeds the serving max_lora_rank 8" in text
    assert _run(capsys, *base_args, "--max-lora-rank", "16")[0] == 0


def test_missing_dataset_dir_and_skip(capsys, base_args, tmp_path):
    code, text = _run(capsys, *base_args, "--set", f"dataset_dir={tmp_path / 'nowhere'}")
    assert code == 2 and "does not exist" in text and "dataset_builders.build" in text
    assert _run(capsys, *base_args, "--set", f"dataset_dir={tmp_path / 'nowhere'}", "--no-dataset-check")[0] == 0


def test_smaller_pixel_budget_is_a_note_not_an_error(capsys, base_args):
    code, text = _run(capsys, *base_args, "--set", "image_max_pixels=65536")
    assert code == 0 and "note: image_max_pixels 65,536 differs" in text


@pytest.mark.slow  # a fresh interpreter imports LlamaFactory + DeepSpeed: ~10 s idle, ~25 s on a busy 2-core box
def test_cli_subprocess(base_args, train_env, tmp_path):
    """The real CLI, as slurm/train.sh calls it: exit 2 with every problem named; --help works."""
    cmd = [sys.executable, "-m", "training.recipe_check", *map(str, base_args),
           "--set", "lora_rnk=8", "--set", "lora_rank=256"]
    proc = subprocess.run(cmd, cwd=REPO, env=train_env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "lora_rnk -> lora_rank" in proc.stderr
    assert "lora_rank 256 exceeds the serving max_lora_rank 64" in proc.stderr
    helped = subprocess.run([sys.executable, "-m", "training.recipe_check", "--help"], cwd=REPO, env=train_env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert helped.returncode == 0 and "--max-lora-rank" in helped.stdout and "--no-dataset-check" in helped.stdout


def test_check_data_names_a_dataset_info_that_is_not_json(tmp_path, capsys):
    from training.run_card import main as run_card_main

    recipe = Path(__file__).resolve().parents[1] / "llamafactory_configs" / "tiny" / "lora_sft_cpu.yaml"
    (tmp_path / "dataset_info.json").write_text("{not json")
    assert run_card_main(["--recipe", str(recipe), "--set", f"dataset_dir={tmp_path}", "--check-data"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'dataset_info.json'}: unreadable (JSONDecodeError" in err and "Traceback" not in err
    (tmp_path / "dataset_info.json").write_text("[1, 2]")
    assert run_card_main(["--recipe", str(recipe), "--set", f"dataset_dir={tmp_path}", "--check-data"]) == 2
    assert "not a JSON object of datasets" in capsys.readouterr().err
