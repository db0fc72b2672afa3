"""Write the Q&A pairs as a second LlamaFactory ShareGPT dataset beside the morphology dataset, and check it.

Writes into dataset/ (the morphology export's folder, whose images it reuses):
    <name>_qa_train.json, <name>_qa_val.json, <name>_qa_test.json   one sample per question
    <name>_qa_<split>_meta.jsonl     sample id, item id, kind, question, reference answer, refusal, the
                                     source sentences (the judge's evidence in eval sem_qa), features
    dataset_info.json                the three entries added (earlier Q&A entries replaced; others kept)
    qa_card.json                     generator, prompt version, pairs per split/kind, refusals
A sample is {"messages": [{"role": "user", "content": "<image>" + question}, {"role": "assistant",
"content": answer}], "images": ["images/<split>/<item>.jpg"]}: the same image file, and so the same
split, as the item's morphology sample (split by source paper: no paper in two splits). Augmented
rotations get no Q&A (a rotation changes "where" answers).

Validation: every sample goes through validate.check_sample (images, tags, roles, cutoff_len) without
the morphology answer check; a problem raises DatasetValidationError.

Usage:
    written = write(paths, config, qa_items, items, split_of)    # {"train": n, "val": n, "test": n}
"""

from __future__ import annotations

import json
from collections import Counter

from dataset_builders.config import BuildConfig
from dataset_builders.export import IMAGE_TAG, SPLITS, dataset_info_entry, new_sample
from dataset_builders.questions.records import QAItem
from dataset_builders.records import Item
from dataset_builders.stage_paths import StagePaths
from dataset_builders.validate import DatasetCheck, DatasetValidationError, ImageCache, check_sample
from fracto_core.files import write_json_atomic, write_text_atomic


def qa_name(config: BuildConfig, split: str) -> str:
    return f"{config.dataset_name}_qa_{split}"


def write(paths: StagePaths, config: BuildConfig, results: list[QAItem], items: dict[str, Item],
          split_of: dict[str, str]) -> dict[str, int]:
    """Write the three Q&A files, their meta files, the dataset_info entries and qa_card.json; validate."""
    out = paths.dataset
    samples: dict[str, list[dict]] = {s: [] for s in SPLITS}
    metas: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for r in sorted(results, key=lambda r: r.item_id):
        split = split_of.get(r.item_id)
        if split is None or not r.pairs:
            continue
        item = items[r.item_id]
        image = new_sample(item.item_id, split, item, item.image).image  # the morphology sample's image file
        for pair in r.pairs:
            samples[split].append({"messages": [{"role": "user", "content": IMAGE_TAG + pair.question},
                                                {"role": "assistant", "content": pair.answer}],
                                   "images": [image]})
            metas[split].append({"sample_id": f"{r.item_id}#{pair.kind}", "item_id": r.item_id, "image": image,
                                 "kind": pair.kind, "question": pair.question, "answer": pair.answer,
                                 "refused": pair.refused, "sources": pair.sources, "features": pair.features,
                                 "item_features": item.features, "paper_ids": item.paper_ids,
                                 "qa_origin": r.origin, "prompt_version": r.prompt_version,
                                 "panel_captions": r.panel_captions})

    info_path = out / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    info = {k: v for k, v in info.items() if not k.startswith(f"{config.dataset_name}_qa_")}
    check = DatasetCheck()
    images = ImageCache(out)
    for split in SPLITS:
        name = qa_name(config, split)
        write_json_atomic(out / f"{name}.json", samples[split])
        lines = "".join(json.dumps(m, ensure_ascii=False, sort_keys=True) + "\n" for m in metas[split])
        write_text_atomic(out / f"{name}_meta.jsonl", lines)
        info[name] = dataset_info_entry(f"{name}.json")
        for i, sample in enumerate(samples[split]):
            check_sample(sample, f"{name}.json#{i}", config, images, check, check_answers=False)
    if check.problems:
        raise DatasetValidationError(check.problems)
    write_json_atomic(info_path, info)

    every = [m for split in SPLITS for m in metas[split]]
    origins = sorted({m["qa_origin"] for m in every})
    write_json_atomic(out / "qa_card.json", {
        "datasets": [qa_name(config, s) for s in SPLITS],
        "generator": origins, "prompt_versions": sorted({m["prompt_version"] for m in every}),
        "pairs": {s: len(metas[s]) for s in SPLITS},
        "images": {s: len({m["item_id"] for m in metas[s]}) for s in SPLITS},
        "papers": papers_per_split(metas),
        "warnings": split_warnings(papers_per_split(metas)),
        "kinds": dict(sorted(Counter(m["kind"] for m in every).items())),
        "refusals": dict(sorted(Counter(m["kind"] for m in every if m["refused"]).items())),
        "max_sample_tokens": check.max_sample_tokens,
    })
    return {s: len(samples[s]) for s in SPLITS}


def papers_per_split(metas: dict[str, list[dict]]) -> dict[str, int]:
    return {s: len({p for m in metas[s] for p in m["paper_ids"]}) for s in SPLITS}


def split_warnings(papers: dict[str, int]) -> list[str]:
    """What a user must know before training or scoring on these splits (issue 27: a small real corpus)."""
    empty = [s for s in ("val", "test") if papers[s] == 0]
    if not empty:
        return []
    return [f"no Q&A pairs in {' and '.join(empty)}: all {sum(papers.values())} source paper(s) with pairs are in "
            f"other splits, so sem_qa has {'no test split' if 'test' in empty else 'no validation split'}; "
            "rebuild with --min-split-papers 1 (or more), which moves whole papers out of train"]
