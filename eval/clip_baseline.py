"""CLIP zero-shot baseline (`--model clip:<architecture>/<weights>`) with open_clip, on every task, offline.

The DoITPoMS CLIP + VLM study reports CLIP zero-shot top-1/top-2 of 0.536/0.798 for the microscopy technique
and 0.346/0.523 for the material category; this baseline lets a user measure the same on their benchmark.

Weights: `<weights>` is a local file (`clip:ViT-B-32//abs/path/open_clip_model.safetensors`), a local folder
with open_clip_config.json + weights (`clip:ViT-B-32/local-dir:/abs/folder`), a pretrained tag already in the
HF cache (`clip:ViT-B-32/openai`, read with HF_HUB_OFFLINE=1: nothing is downloaded), or `random` (random
initialisation: tests only; seeded by `--seed`, default 0, so a rerun gives the same numbers; the seed is in
the run card and in the model identity). Every architecture family open_clip builds works: its own ViT and
ModifiedResNet (RN50 …), CoCa, and timm trunks (ConvNeXt, timm ViT, EVA, FastViT/MobileCLIP, ViTamin);
towers whose tokenizer lives on the HF hub (SigLIP, roberta/xlm text) load only when that tokenizer is cached. A custom architecture can be registered first with open_clip.add_model_config
(DESIGN §6: a ~3.4 M-parameter random CLIP runs a forward pass on the CPU in milliseconds).

Scoring (no text generation, no API):
  * single-label tasks: one text embedding per class, the mean over prompts built from the class name and
    its synonyms (eval.tasks choices); cosine similarity to the image embedding ranks the classes; the
    answer is the top class; top-1 and top-2 accuracy come from the ranking (choice_scores per sample);
  * fracture_morphology: a score per feature (similarity to "a fractograph showing <feature>" minus the
    similarity to a neutral "a fractograph of a fracture surface"), and a feature is predicted when its score
    passes one threshold, chosen to maximise micro F1 on the validation split (the builder's `val` split
    beside a builder benchmark, else refused). The threshold goes into the run card.

Usage: python -m eval.run --task microscopy_technique --model clip:ViT-B-32/openai --benchmark expert/labels.csv
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fracto_core.vocabulary import canonical_names, feature
from eval.benchmark import Benchmark, BenchmarkError, load_benchmark
from eval.metrics import multilabel_scores, sample_scores, top_k_accuracy
from eval.records import RequestParams, SampleRecord, SampleScores
from eval.tasks import Task

PROMPT_TEMPLATES = {
    "technique": ("a {} image of a fracture surface", "a fractograph recorded by {}"),
    "material": ("a fracture surface of {}", "a fractograph of a broken {} part"),
    "mechanism": ("a fracture surface showing {} failure", "a fractograph of {}"),
    "features": ("a fractograph showing {}",),
}
NEUTRAL_PROMPT = "a fractograph of a fracture surface"
MAX_SYNONYMS = 2  # per class: the name + this many synonyms, so long synonym lists do not dominate
DEFAULT_RANDOM_SEED = 0  # clip:<arch>/random without --seed


class ClipError(ValueError):
    """A clip: model that cannot be loaded, or a run that cannot be scored (no validation split)."""


def split_name(name: str) -> tuple[str, str]:
    """clip:<arch>/<weights> -> (arch, weights)."""
    body = name.removeprefix("clip:")
    arch, slash, weights = body.partition("/")
    if not arch or not slash or not weights:
        raise ClipError(f"--model {name!r}: expected clip:<open_clip architecture>/<weights file | local-dir:FOLDER "
                        "| pretrained tag | random>, e.g. clip:ViT-B-32/openai")
    return arch, weights


def random_seed(weights: str, seed: int | None) -> int | None:
    """The initialisation seed of a `random` model (None for real weights, which need none)."""
    if weights != "random":
        return None
    return DEFAULT_RANDOM_SEED if seed is None else seed


def clip_weights(name: str, seed: int | None = None) -> tuple[dict, tuple[Path, ...]]:
    """(what names the model, local weights to fingerprint) for eval.identity.offline_identity.

    A random model is named by its seed too: another seed is another model (resume refuses it)."""
    arch, weights = split_name(name)
    local = Path(weights.removeprefix("local-dir:"))
    body = {"clip": arch, "weights": weights}
    if weights == "random":
        body["seed"] = random_seed(weights, seed)
    return body, (local,) if local.is_absolute() else ()


def image_size(model) -> list[int]:
    """[height, width] the vision tower expects: open_clip's ModifiedResNet stores an int (224), its ViT and
    timm trunks a tuple (open_clip 3.3.0 modified_resnet.py / transformer.py / timm_model.py)."""
    size = getattr(model.visual, "image_size", None)
    if size is None:
        return []
    return [int(size), int(size)] if isinstance(size, int) else [int(s) for s in size]


def load_clip(arch: str, weights: str, seed: int | None = None):
    """(model, preprocess, tokenizer) on the CPU, in eval mode; never downloads (HF_HUB_OFFLINE=1).

    `random` weights are drawn under torch.manual_seed(seed) inside a forked RNG state (the caller's torch
    RNG is left as it was); timm trunks initialise from the same torch generator."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # DESIGN §6: otherwise a missing tag retries the hub ~46 s
    import open_clip
    import torch

    pretrained = None if weights == "random" else weights
    try:
        with torch.random.fork_rng(devices=[]):
            if weights == "random":
                torch.manual_seed(random_seed(weights, seed))
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained, device="cpu")
        tokenizer = open_clip.get_tokenizer(arch)
    except Exception as exc:  # open_clip raises RuntimeError/ValueError/OSError/hub errors alike
        raise ClipError(f"open_clip could not load {arch!r} with weights {weights!r}: {type(exc).__name__}: "
                        f"{exc}") from None
    model.eval()
    return model, preprocess, tokenizer


def class_prompts(task: Task) -> dict[str, list[str]]:
    """The prompts of each label: templates x (name + synonyms)."""
    templates = PROMPT_TEMPLATES[task.label_field]
    if task.label_field == "features":
        phrases = {n: [n, *feature(n).synonyms[:MAX_SYNONYMS]] for n in task.labels}
    else:
        phrases = {c.name: [c.name, *c.synonyms[:MAX_SYNONYMS]] for c in task.choices}
    return {label: [t.format(p) for t in templates for p in ps] for label, ps in phrases.items()}


def _embed_texts(model, tokenizer, texts: list[str]) -> np.ndarray:
    import torch

    with torch.no_grad():
        emb = model.encode_text(tokenizer(texts)).float()
    emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return emb.numpy()


def _embed_images(model, preprocess, bench: Benchmark, batch: int = 16) -> np.ndarray:
    import torch
    from PIL import Image

    out = []
    for start in range(0, len(bench.items), batch):
        chunk = bench.items[start:start + batch]
        with torch.no_grad():
            pixels = torch.stack([preprocess(Image.open(bench.image_path(it)).convert("RGB")) for it in chunk])
            emb = model.encode_image(pixels).float()
        out.append((emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)).numpy())
    return np.concatenate(out)


def label_scores(model, preprocess, tokenizer, task: Task, bench: Benchmark) -> np.ndarray:
    """(n images, n labels) cosine similarities (features: minus the neutral prompt's)."""
    prompts = class_prompts(task)
    text = np.stack([_embed_texts(model, tokenizer, prompts[label]).mean(0) for label in task.labels])
    text /= np.linalg.norm(text, axis=1, keepdims=True).clip(1e-12)
    images = _embed_images(model, preprocess, bench)
    scores = images @ text.T
    if task.label_field == "features":
        scores = scores - (images @ _embed_texts(model, tokenizer, [NEUTRAL_PROMPT])[0])[:, None]
    return scores


def choose_threshold(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(threshold, micro F1 on these images): the score cut maximising micro F1 (ties: the higher cut)."""
    candidates = np.unique(np.concatenate([scores.ravel(), [scores.max() + 1.0]]))
    best = (float(candidates[-1]), -1.0)
    for t in candidates[::-1]:
        f1 = multilabel_scores(truth, scores >= t)["micro_f1"]
        if f1 > best[1]:
            best = (float(t), f1)
    return best


def _validation(config, bench: Benchmark) -> Benchmark:
    if bench.kind != "builder_split":
        raise ClipError("fracture_morphology with clip: needs a validation split to choose the feature threshold: "
                        "pass the builder's dataset folder (its val split is used)")
    try:
        return load_benchmark(bench.root, split="val")
    except BenchmarkError as exc:
        raise ClipError(f"no validation split beside the benchmark ({exc})") from None


def clip_samples(config, task: Task, bench: Benchmark, refs: dict[str, list[str]], max_pixels: int,
                 min_pixels: int) -> tuple[list[SampleRecord], RequestParams, dict]:
    """Score every benchmark image with CLIP; (samples, recorded parameters, run-card protocol)."""
    arch, weights = split_name(config.model)
    seed = random_seed(weights, config.seed)
    model, preprocess, tokenizer = load_clip(arch, weights, seed)
    recorded = RequestParams(model=config.model, image_max_pixels=max_pixels,
                             extra={"backend": "open_clip", "architecture": arch, "weights": weights,
                                    "image_size": image_size(model), "init_seed": seed})
    scores = label_scores(model, preprocess, tokenizer, task, bench)
    labels = list(task.labels)
    protocol: dict = {"clip": {"architecture": arch, "weights": weights, "init_seed": seed,
                               "prompts": class_prompts(task)}}
    if task.label_field == "features":
        val = _validation(config, bench)
        val_truth = np.array([[f in it.features for f in canonical_names()] for it in val.items])
        threshold, val_f1 = choose_threshold(label_scores(model, preprocess, tokenizer, task, val), val_truth)
        protocol["clip"].update({"threshold": threshold, "validation_micro_f1": val_f1,
                                 "validation": val.name, "validation_items": len(val.items)})
        predicted = [[labels[j] for j in np.flatnonzero(row >= threshold)] for row in scores]
    else:
        predicted = [[labels[int(np.argmax(row))]] for row in scores]
        truth_idx = np.array([labels.index(refs[it.item_id][0]) for it in bench.items])
        protocol["clip"].update({"top1_accuracy": top_k_accuracy(truth_idx, scores, 1),
                                 "top2_accuracy": top_k_accuracy(truth_idx, scores, 2)})
    samples = []
    for it, row, pred in zip(bench.items, scores, predicted):
        ref = refs[it.item_id]
        samples.append(SampleRecord(
            item_id=it.item_id, image_sha256=it.image_sha256, task=task.name, model=config.model, reference=ref,
            request=recorded, raw_reply="", parsed=pred, parse_status="ok", context="none",
            scores=SampleScores(**sample_scores(ref, pred)),
            choice_scores={label: round(float(v), 6) for label, v in zip(labels, row)}))
    return samples, recorded, protocol
