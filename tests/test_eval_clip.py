"""Issue 14: the CLIP zero-shot baseline runs a real open_clip forward pass on the CPU with a small randomly
initialised model (no download): top-1/top-2 on a multiple-choice task, a validation-chosen threshold for the
morphology task, records eval.report reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

open_clip = pytest.importorskip("open_clip")

from eval.clip_baseline import choose_threshold, class_prompts, split_name  # noqa: E402
from eval.records import read_run  # noqa: E402
from eval.run import RunConfig, RunError, run_eval  # noqa: E402
from eval.tasks import get_task  # noqa: E402

from support.eval_classes import make_class_benchmark

TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


TEXT = TINY["text_cfg"]


def _timm(name: str, size: int, pool: str = "avg") -> dict:
    return {"timm_model_name": name, "timm_model_pretrained": False, "timm_pool": pool, "timm_proj": "linear",
            "image_size": size}


# The smallest member of each architecture family open_clip 3.3.0 builds (factory.py: CLIP, CustomTextCLIP, CoCa;
# vision towers VisionTransformer, ModifiedResNet, TimmModel), random weights. Timed here on the shared 2-core
# machine under load (create + 5 images + the class prompts): vit 0.6 s, resnet 0.9 s, coca 0.4 s,
# timm convnext_atto 1.7 s; timm vit_tiny / eva02_tiny (224 px fixed) 5-6 s and fastvit_mci0 ~10 s (slow).
FAMILIES = {
    "vit": TINY,
    "resnet": {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16,
                                               "head_width": 16}, "text_cfg": TEXT},
    "coca": {"embed_dim": 32, "custom_text": True,
             "vision_cfg": {**TINY["vision_cfg"], "attentional_pool": True, "attn_pooler_heads": 2,
                            "output_tokens": True},
             "text_cfg": {**TEXT, "embed_cls": True, "output_tokens": True},
             "multimodal_cfg": {"context_length": 76, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}},
    "convnext": {"embed_dim": 32, "vision_cfg": _timm("convnext_atto", 64), "text_cfg": TEXT},
}
SLOW_FAMILIES = {
    "timm-vit": {"embed_dim": 32, "vision_cfg": _timm("vit_tiny_patch16_224", 224, "token"), "text_cfg": TEXT},
    "eva": {"embed_dim": 32, "vision_cfg": _timm("eva02_tiny_patch14_224", 224, "token"), "text_cfg": TEXT},
    "mobileclip": {"embed_dim": 32, "vision_cfg": _timm("fastvit_mci0", 64), "text_cfg": TEXT},
}


def _register(folder: Path, name: str, config: dict) -> str:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return name


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> str:
    return _register(tmp_path_factory.mktemp("clip"), "fracto-tiny-clip", TINY)


@pytest.fixture(scope="module")
def family_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("families")


def test_names_prompts_and_threshold():
    assert split_name("clip:ViT-B-32//abs/w.pt") == ("ViT-B-32", "/abs/w.pt")
    prompts = class_prompts(get_task("microscopy_technique"))
    assert "a SEM image of a fracture surface" in prompts["SEM"]
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.6]])
    truth = np.array([[1, 0], [0, 1], [1, 0]], bool)
    t, f1 = choose_threshold(scores, truth)
    assert 0.6 < t <= 0.7 and f1 == 1.0


def test_clip_multiple_choice_top1_top2(tmp_path, tiny_clip):
    rows = [{"item_id": f"c{i}", "features": "", "technique": t} for i, t in
            enumerate(["SEM", "TEM", "optical microscopy", "SEM", "macro photograph"])]
    csv_path = make_class_benchmark(tmp_path / "bench", rows)
    outcome = run_eval(RunConfig(model=f"clip:{tiny_clip}/random", task="microscopy_technique", benchmark=csv_path,
                                 out=tmp_path / "run", progress=False))
    run = read_run(outcome.run_dir)
    labels = list(get_task("microscopy_technique").labels)
    scores = np.array([[s.choice_scores[l] for l in labels] for s in run.samples])
    assert scores.shape == (5, 6) and np.isfinite(scores).all() and np.ptp(scores) > 0  # a real forward pass
    truth = np.array([labels.index(s.reference[0]) for s in run.samples])
    top1 = float((scores.argmax(1) == truth).mean())
    top2 = float(np.mean([t in np.argsort(-row)[:2] for t, row in zip(truth, scores)]))
    clip = run.card.protocol["clip"]
    assert clip["top1_accuracy"] == pytest.approx(top1) and clip["top2_accuracy"] == pytest.approx(top2)
    assert [s.parsed[0] for s in run.samples] == [labels[j] for j in scores.argmax(1)]
    assert "CLIP zero-shot" in outcome.report_md.read_text()


def _split(folder: Path, split: str, items: list[tuple[str, list[str]]], rng) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for item_id, feats in items:
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / "images" / f"{item_id}.png")
        lines.append(json.dumps({"item_id": item_id, "image": f"images/{item_id}.png", "features": feats}))
    (folder / f"tiny_{split}_meta.jsonl").write_text("\n".join(lines) + "\n")


def test_clip_morphology_threshold_from_validation(tmp_path, tiny_clip):
    rng = np.random.default_rng(0)
    folder = tmp_path / "dataset"
    _split(folder, "test", [("t1", ["equiaxed dimples"]), ("t2", ["fatigue striations"])], rng)
    _split(folder, "val", [("v1", ["equiaxed dimples"]), ("v2", ["cleavage facets", "river patterns"])], rng)
    outcome = run_eval(RunConfig(model=f"clip:{tiny_clip}/random", benchmark=folder, out=tmp_path / "m",
                                 progress=False))
    run = read_run(outcome.run_dir)
    clip = run.card.protocol["clip"]
    assert clip["validation_items"] == 2 and 0 <= clip["validation_micro_f1"] <= 1
    for s in run.samples:
        assert s.parsed == [f for f, v in s.choice_scores.items() if v >= clip["threshold"]]
    with pytest.raises(RunError, match="validation split"):  # a CSV benchmark has no val split
        csv_path = make_class_benchmark(tmp_path / "csv", [{"item_id": "x", "features": "shear lip"}])
        run_eval(RunConfig(model=f"clip:{tiny_clip}/random", benchmark=csv_path, out=tmp_path / "c", progress=False))


TECHNIQUE_ROWS = [{"item_id": f"c{i}", "features": "", "technique": t} for i, t in
                  enumerate(["SEM", "TEM", "optical microscopy", "SEM", "macro photograph"])]


def _family_run(tmp_path: Path, family_folder: Path, family: str, config: dict):
    arch = _register(family_folder, f"fracto-{family}", config)
    csv_path = make_class_benchmark(tmp_path / "bench", TECHNIQUE_ROWS)
    outcome = run_eval(RunConfig(model=f"clip:{arch}/random", task="microscopy_technique", benchmark=csv_path,
                                 out=tmp_path / "run", progress=False))
    run = read_run(outcome.run_dir)
    scores = np.array([list(s.choice_scores.values()) for s in run.samples])
    assert scores.shape == (5, 6) and np.isfinite(scores).all() and np.ptp(scores) > 0
    size = run.samples[0].request.extra["image_size"]
    assert len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)
    return size


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_architecture_family_runs_with_random_weights(tmp_path, family_folder, family):
    """Issue 27 (1): `clip:RN50/random` crashed (ModifiedResNet.image_size is the int 224, not a tuple)."""
    size = _family_run(tmp_path, family_folder, family, FAMILIES[family])
    expected = FAMILIES[family]["vision_cfg"]["image_size"]
    assert size == [expected, expected]


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(SLOW_FAMILIES))
def test_timm_families_with_fixed_input_size(tmp_path, family_folder, family):
    size = _family_run(tmp_path, family_folder, family, SLOW_FAMILIES[family])
    assert size == [SLOW_FAMILIES[family]["vision_cfg"]["image_size"]] * 2


def test_random_weights_are_seeded_and_recorded(tmp_path, tiny_clip):
    """Issue 27 (2): top-1/top-2 of clip:<arch>/random changed from run to run; now the seed (default 0) fixes
    the weights, is in the run card, and another seed is another model."""
    import torch

    csv_path = make_class_benchmark(tmp_path / "bench", TECHNIQUE_ROWS)

    def scores(out: str, seed: int | None):
        torch.manual_seed(hash(out) % 1000)  # whatever the caller's RNG holds must not matter
        outcome = run_eval(RunConfig(model=f"clip:{tiny_clip}/random", task="microscopy_technique",
                                     benchmark=csv_path, out=tmp_path / out, progress=False, seed=seed))
        run = read_run(outcome.run_dir)
        return [s.choice_scores for s in run.samples], run.card

    first, card = scores("a", None)
    again, _ = scores("b", None)
    assert first == again
    assert card.protocol["clip"]["init_seed"] == 0
    same_seed, card7 = scores("c", 0)
    other, card8 = scores("d", 8)
    assert same_seed == first and other != first
    assert card8.protocol["clip"]["init_seed"] == 8
    assert card8.identity.key != card.identity.key and card7.identity.key == card.identity.key
