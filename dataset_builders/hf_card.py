"""The Hugging Face dataset card (README.md) of an export_hf folder, generated from the build's dataset card.

YAML metadata as the Hub reads it (hub-docs datasetcard.md; huggingface_hub DatasetCardData: ``license`` may be a
list; ``size_categories`` buckets n<1K, 1K<n<10K, ...): license (Hub ids of the published images' licences),
task_categories, size_categories, ``configs`` (the default config with train/validation/test and one config per
ablation, whose train split is a union of train parts) and ``dataset_info`` per config (features, split sizes:
datasets checks ``num_examples`` when it loads). The body recounts what was published (splits, features,
licences published and excluded) and carries the build card's settings (prompt version, image budget, JPEG
policy, label provenance, leakage checks).

Usage:
    from dataset_builders.hf_card import readme
    text = readme(build_dir, selection, folders, "fracto")
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import yaml

from dataset_builders.licences import UNKNOWN
from dataset_builders.publish import SPLITS, Selection

HF_SPLIT = {"train": "train", "val": "validation", "test": "test"}  # the Hub's split names
# Hub licence ids (hf.co/docs/hub/repositories-licenses) for (licence id, version); others -> "other"
HUB_VERSIONS = {"cc-by": ("2.0", "2.5", "3.0", "4.0"), "cc-by-sa": ("3.0", "4.0"), "cc-by-nc": ("2.0", "3.0", "4.0"),
                "cc-by-nd": ("4.0",), "cc-by-nc-nd": ("3.0", "4.0"), "cc-by-nc-sa": ("2.0", "3.0", "4.0")}
TRAIN_PARTS = ("original", "augmented", "manual_original", "manual_augmented")  # disjoint parts of train
ABLATIONS = {"no_manual": ("original", "augmented"), "no_rotation": ("original", "manual_original")}


# The features (below) as plain data, so that the export need not import datasets (1.0-1.1 s of CPU, ~2 s wall,
# per process: a CLI export took longer to start than to write): the column -> "string", "int64", "float64",
# "list" (of strings), "messages" or "images". arrow_schema and yaml_features give what datasets 4.0.0 gives
# for features() (Features.arrow_schema, Features._to_yaml_list); tests/test_export_hf.py compares them.
COLUMNS = {"messages": "messages", "images": "images", "sample_id": "string", "item_id": "string",
           "features": "list", "label_origin": "string", "augmentation": "string", "rotation_angle": "float64",
           "paper_ids": "list", "licence": "string", "licence_url": "string", "doi": "string",
           "source_url": "string", "source_pdf": "string", "page": "int64", "figure_number": "int64",
           "panel": "string", "caption": "string", "excerpts": "list", "technique": "string", "material": "string",
           "provenance": "string"}


def arrow_schema(decode: bool):
    """features(decode).arrow_schema without datasets: the Arrow types, and the features as datasets'
    Features.to_dict in the schema's "huggingface" metadata (datasets reads them back from it)."""
    import pyarrow as pa

    def value(dtype: str) -> dict:
        return {"dtype": dtype, "_type": "Value"}

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "list": pa.list_(pa.string()),
             "messages": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
             "images": pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))}
    dicts = {"list": {"feature": value("string"), "_type": "List"},
             "messages": {"feature": {"role": value("string"), "content": value("string")}, "_type": "List"},
             "images": {"feature": ({} if decode else {"decode": False}) | {"_type": "Image"}, "_type": "List"}}
    # (datasets leaves out decode at its default, True)
    meta = {"info": {"features": {c: dicts.get(k) or value(k) for c, k in COLUMNS.items()}}}
    return pa.schema([(c, types[k]) for c, k in COLUMNS.items()]).with_metadata({"huggingface": json.dumps(meta)})


def yaml_features() -> list[dict]:
    """features(decode=True)._to_yaml_list() without datasets: the card's dataset_info features."""
    special = {"list": {"list": "string"}, "images": {"list": "image"},
               "messages": {"list": [{"name": "role", "dtype": "string"}, {"name": "content", "dtype": "string"}]}}
    return [{"name": c} | special.get(k, {"dtype": k}) for c, k in COLUMNS.items()]


def features(decode: bool):
    """The dataset's features (datasets.Features); images as a list of one Image, as LlamaFactory's ShareGPT
    format has it (columns messages/images, dataset_info_entry). The export uses arrow_schema and yaml_features,
    the same without importing datasets."""
    from datasets import Features, Image, List, Value

    text, number = Value("string"), Value("int64")
    return Features({
        "messages": List({"role": text, "content": text}),
        "images": List(Image(decode=decode)),
        "sample_id": text, "item_id": text,
        "features": List(text),  # morphology features (vocabulary names): the answer's content
        "label_origin": text,
        "augmentation": text, "rotation_angle": Value("float64"),  # null for originals
        "paper_ids": List(text),
        "licence": text, "licence_url": text, "doi": text, "source_url": text,
        "source_pdf": text, "page": number, "figure_number": number, "panel": text,
        "caption": text, "excerpts": List(text), "technique": text, "material": text,
        "provenance": text,  # the builder's whole provenance record, as JSON
    })


def hub_licence(licence: str, url: str | None) -> str:
    """("cc-by", ".../by/4.0/") -> "cc-by-4.0"; a licence without a stated version is "other" (never guessed)."""
    if licence == "cc0":
        return "cc0-1.0"
    if licence == UNKNOWN:
        return "unknown"
    version = re.search(r"/(\d\.\d)/?$", url or "")
    if version and version.group(1) in HUB_VERSIONS.get(licence, ()):
        return f"{licence}-{version.group(1)}"
    return "other"


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def configs(folders: dict[str, dict], variants: bool) -> dict[str, dict[str, list[str]]]:
    """{config: {hub split: [data file patterns]}}; splits without data are left out."""
    parts = [p for p in TRAIN_PARTS if f"data/train/{p}" in folders]

    def splits(train_parts: list[str]) -> dict[str, list[str]]:  # fresh lists: no YAML anchors in the card
        out = {"train": [f"data/train/{p}/*.parquet" for p in train_parts]} if train_parts else {}
        return out | {HF_SPLIT[s]: [f"data/{HF_SPLIT[s]}/*.parquet"] for s in ("val", "test")
                      if f"data/{HF_SPLIT[s]}" in folders}

    out = {"default": splits(parts)}
    if variants:
        for name, keep in ABLATIONS.items():
            if any(p in keep for p in parts):
                out[name] = splits([p for p in parts if p in keep])
    return out


def metadata(selection: Selection, folders: dict[str, dict], variants: bool, name: str) -> dict:
    published = [s for split in SPLITS for s in selection.samples[split]]
    hub_ids = sorted({hub_licence(str(s.meta["provenance"].get("licence") or UNKNOWN),
                                  s.meta["provenance"].get("licence_url")) for s in published}) or ["unknown"]
    rows = {f: info["rows"] for f, info in folders.items()}
    cfgs = configs(folders, variants)
    meta: dict = {"license": hub_ids[0] if len(hub_ids) == 1 else hub_ids}
    if "other" in hub_ids:
        meta |= {"license_name": "mixed-per-image", "license_link": "ATTRIBUTION.md"}
    meta |= {
        "language": ["en"], "pretty_name": f"{name}: fractography images labelled with morphology features",
        "task_categories": ["image-text-to-text"],
        "tags": ["fractography", "materials-science", "sem", "vision-language", "llamafactory"],
        "size_categories": [size_category(len(published))],
        "configs": [{"config_name": c, "data_files": [{"split": s, "path": p} for s, p in splits.items()]}
                    | ({"default": True} if c == "default" else {}) for c, splits in cfgs.items()],
        "dataset_info": [{"config_name": c, "features": yaml_features(),  # datasets' own YAML (_to_yaml_list)
                          "splits": [{"name": s, "num_examples": sum(rows[p.rsplit("/", 1)[0]] for p in paths)}
                                     for s, paths in splits.items()]} for c, splits in cfgs.items()],
    }
    return meta


def _table(header: list[str], body: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in body] + [""]


def readme(build: Path, selection: Selection, folders: dict[str, dict], name: str) -> str:
    """README.md: YAML front matter + the card for people."""
    build_config = build / "build_config.json"
    variants = json.loads(build_config.read_text(encoding="utf-8")).get("variants", True) \
        if build_config.is_file() else True
    card_file = build / "dataset" / "dataset_card.json"
    card = json.loads(card_file.read_text(encoding="utf-8")) if card_file.is_file() else {}
    meta = metadata(selection, folders, variants, name)
    cfgs = configs(folders, variants)
    ablation = next((c for c in cfgs if c != "default"), None)  # one this export has (none without variants)
    n = sum(len(selection.samples[s]) for s in SPLITS)
    md = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
          f"# {meta['pretty_name']}", "",
          f"{n} samples of fracture-surface images (SEM/optical fractographs) mined from scientific papers, each with "
          "an instruction and the morphology features it shows as the answer (LlamaFactory ShareGPT columns "
          "`messages`, `images`), with provenance and licence columns. Built with FractoVLM; only images whose every "
          f"source paper is licensed under one of: {', '.join(selection.licences)}. Credit the sources as "
          "[ATTRIBUTION.md](ATTRIBUTION.md) lists them.", "",
          "## Load", "", "```python", "from datasets import load_dataset",
          'ds = load_dataset("<this folder or hub id>")            # ' + " / ".join(cfgs["default"]),
          *([f'ablation = load_dataset("<...>", "{ablation}")  # configs: ' + ", ".join(cfgs)] if ablation else []),
          "```", "",
          "LlamaFactory (`dataset_dir` = this folder; `dataset_info.json` has one entry per data folder, images "
          "read from the embedded bytes):", "", "```yaml"]
    entries = {c: ",".join(f"{name}_train_{p.split('/')[2]}" for p in s.get("train", [])) for c, s in cfgs.items()}
    md += [f"dataset: {v}   # {c}" for c, v in entries.items() if v]
    md += [f"eval_dataset: {name}_val" if "validation" in cfgs["default"] else "# no validation split", "```", ""]
    md += ["## Splits (published)", ""]
    md += _table(["split", "samples", "original images", "rotated copies"],
                 [[HF_SPLIT[s], len(selection.samples[s]), sum(not x.meta["augmentation"] for x in selection.samples[s]),
                   sum(bool(x.meta["augmentation"]) for x in selection.samples[s])] for s in SPLITS])
    md += ["## Configs", ""]
    md += _table(["config", "train parts"], [[c, ", ".join(p.split("/")[2] for p in s.get("train", []))]
                                              for c, s in cfgs.items()])
    md += ["## Licences", "", "Published (by the licence of each image's paper):", ""]
    md += _table(["licence", "papers", "images", "samples"],
                 [[k, v["papers"], v["items"], v["samples"]] for k, v in selection.published.items()])
    md += ["Not published (licence not allowed; an image reprinted in a paper whose licence is not allowed is "
           "reported under that licence; under a no-derivatives licence, the cropped panels and rotated copies, "
           "which are adaptations):", ""]
    md += _table(["licence", "papers", "images", "samples"],
                 [[k, v["papers"], v["items"], v["samples"]] for k, v in selection.excluded.items()] or [["none", 0, 0, 0]])
    features = Counter(f for s in SPLITS for x in selection.samples[s] if not x.meta["augmentation"]
                       for f in x.meta["features"])
    md += ["## Features (published original images)", ""]
    md += _table(["feature", "images"], [[f, k] for f, k in sorted(features.items(), key=lambda kv: (-kv[1], kv[0]))])
    if card:
        md += ["## From the build's dataset card", "",
               f"- prompt version: `{card.get('prompt_version')}`; image_max_pixels {card.get('image_max_pixels')}, "
               f"cutoff_len {card.get('cutoff_len')}, seed {card.get('seed')}",
               f"- JPEG encoding: {card.get('jpeg_encoding')}",
               "- label provenance (build): " + ", ".join(f"{o} {v['items']}" for o, v in
                                                       card.get("label_origins", {}).items()),
               f"- leakage between splits (build): {card.get('leakage', {}).get('papers_across_splits')} papers, "
               f"{card.get('leakage', {}).get('near_duplicates_across_splits')} near-duplicate images", ""]
    md += ["## Columns", "", "`messages`, `images` (one image, original bytes), `sample_id`, `item_id`, `features`, "
           "`label_origin`, `augmentation`/`rotation_angle` (null for originals), `paper_ids`, `licence`, `licence_url`, "
           "`doi`, `source_url`, `source_pdf`, `page`, `figure_number`, `panel`, `caption`, `excerpts`, `technique`, "
           "`material`, `provenance` (the builder's full record, JSON).", ""]
    return "\n".join(md)
