"""Benchmarks: expert-labelled images to score models on, loaded into typed, validated records.

Two sources:
  (a) the builder's test split: a dataset folder (or a build's --out folder) holding
      <name>_<split>_meta.jsonl and images/ (dataset_builders.export writes both);
  (b) any folder of images + a CSV with columns `file` (path relative to the folder) and `features`
      (';'-separated, canonical names or vocabulary synonyms, empty = no feature), optionally
      `item_id`, `technique`, `material`, `source`, `mechanism` (failure_mechanism), `caption` and
      `excerpts` (the context levels; excerpts separated by '||'); other columns are ignored and listed in
      the card. A builder meta record may carry the same keys (technique, material, mechanism, caption,
      excerpts as a list).

Validation is strict and complete: every problem (unknown label, missing or unreadable image, a path
outside the folder, a duplicate row) is collected and raised together in one BenchmarkError naming the
CSV row (its line number, header = line 1) or the meta line. Nothing is dropped silently.

The benchmark hash (sha256 over each item's id, image sha256 and labels, sorted by item id) goes into
every run card; eval.report refuses to compare runs with different hashes.

Usage:
    from eval.benchmark import load_benchmark
    bench = load_benchmark(Path("out/dataset"))                  # builder test split
    bench = load_benchmark(Path("expert/labels.csv"))            # folder + CSV (images beside the CSV)
    bench.hash, bench.card(), bench.card_markdown()
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from fracto_core.files import text_lines
from fracto_core.vocabulary import canonical_names, canonicalize, rare_names, sort_features
from eval.tasks import Task, canonical_choice, get_task

BenchmarkKind = Literal["builder_split", "csv"]
CSV_COLUMNS = ("file", "features", "item_id", "technique", "material", "source", "mechanism", "caption", "excerpts")
EXCERPT_SEPARATOR = "||"  # between excerpts in the CSV `excerpts` cell (excerpts hold ';' and ',')


class BenchmarkError(ValueError):
    """A benchmark that cannot be used as is; `problems` holds one line per bad row/file."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"benchmark {source}: {len(problems)} problem(s):\n{lines}")


class BenchmarkItem(BaseModel):
    """One labelled image."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item_id: str
    image: str  # POSIX path relative to the benchmark root
    image_sha256: str
    features: tuple[str, ...]  # canonical, vocabulary order
    technique: str | None = None  # canonical microscopy_technique choice
    material: str | None = None  # canonical material_category choice
    source: str = ""  # source PDF / paper for builder items, the `source` column for CSV items
    label_origin: str = ""  # builder: caption_rules / gpt / manual ...; CSV: "expert"
    location: str = ""  # where it was defined: "labels.csv row 4" or "fracto_test_meta.jsonl line 2"
    # --- issue 14 ---
    mechanism: str | None = None  # canonical failure_mechanism choice
    caption: str = ""  # the figure caption (context level "caption")
    excerpts: tuple[str, ...] = ()  # paper text citing the figure (context level "caption+excerpts")


class Benchmark(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: BenchmarkKind
    root: Path  # absolute; item images resolve against it
    items: list[BenchmarkItem]
    ignored_columns: list[str] = Field(default_factory=list)
    expert_card: dict | None = None  # <csv stem>.card.json beside the CSV (dataset_builders.review benchmark)

    def image_path(self, item: BenchmarkItem) -> Path:
        return self.root / item.image

    @property
    def hash(self) -> str:
        """sha256 over (item id, image sha256, features, technique, material) of every item, by item id."""
        h = hashlib.sha256()
        for it in sorted(self.items, key=lambda i: i.item_id):
            row = [it.item_id, it.image_sha256, list(it.features), it.technique, it.material]
            if it.mechanism is not None or it.caption or it.excerpts:  # issue 14: older hashes stay unchanged
                row += [it.mechanism, it.caption, list(it.excerpts)]
            h.update(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
        return h.hexdigest()

    def limited(self, limit: int | None) -> "Benchmark":
        """The first `limit` items (a different benchmark, so a different hash)."""
        return self if limit is None else self.model_copy(update={"items": self.items[:limit]})

    def references(self, task: Task | str) -> list[list[str]]:
        """The true labels of every item for a task; an item without them is a BenchmarkError."""
        task = get_task(task) if isinstance(task, str) else task
        if task.label_field == "features":
            return [list(it.features) for it in self.items]
        missing = [it.item_id for it in self.items if getattr(it, task.label_field) is None]
        if missing:
            raise BenchmarkError(self.name, [f"item {i}: no {task.label_field} label (needed by task {task.name})"
                                             for i in missing])
        return [[getattr(it, task.label_field)] for it in self.items]

    def card(self) -> dict:
        """Class distribution, rare-feature counts and sources, as JSON-able data (deterministic)."""
        n = len(self.items)
        counts = Counter(f for it in self.items for f in it.features)
        rare = set(rare_names())
        per_image = Counter(len(it.features) for it in self.items)
        sources = Counter(it.source or "(unknown)" for it in self.items)
        card = {
            "name": self.name, "kind": self.kind, "hash": self.hash, "n_items": n,
            "features": {f: {"images": counts[f], "share": counts[f] / n if n else 0.0, "rare": f in rare}
                         for f in canonical_names()},
            "rare_features": {f: counts[f] for f in canonical_names() if f in rare},
            "images_with_rare_feature": sum(1 for it in self.items if rare & set(it.features)),
            "features_per_image": {str(k): per_image[k] for k in sorted(per_image)},
            "images_without_features": per_image.get(0, 0),
            "sources": dict(sorted(sources.items(), key=lambda kv: (-kv[1], kv[0]))),
            "n_sources": len(sources),
            "label_origins": dict(sorted(Counter(it.label_origin or "(unknown)" for it in self.items).items())),
            "ignored_columns": list(self.ignored_columns),
        }
        if self.expert_card is not None:
            card["expert"] = self.expert_card
        for field in ("technique", "material", "mechanism"):
            values = Counter(getattr(it, field) for it in self.items if getattr(it, field) is not None)
            card[field] = dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0])))
        return card

    def card_markdown(self) -> str:
        return card_markdown(self.card())


def card_markdown(card: dict) -> str:
    """The benchmark card as markdown (from Benchmark.card() data, e.g. a run dir's benchmark_card.json)."""
    n = card["n_items"]
    lines = [
        f"## Benchmark `{card['name']}` ({card['kind']})", "",
        f"- items: {n}; sources: {card['n_sources']}; hash: `{card['hash'][:16]}…`",
        f"- images with a rare feature: {card['images_with_rare_feature']}; "
        f"images without any feature: {card['images_without_features']}",
        "- features per image: " + ", ".join(f"{k}: {v}" for k, v in card["features_per_image"].items()),
        "- label origins: " + ", ".join(f"{k}: {v}" for k, v in card["label_origins"].items()),
        "", "| feature | rare | images | share |", "|---|---|---:|---:|",
    ]
    for name, row in card["features"].items():
        lines.append(f"| {name} | {'yes' if row['rare'] else ''} | {row['images']} | {row['share']:.2f} |")
    absent = [name for name, row in card["features"].items() if row["images"] == 0]
    if absent:
        lines += ["", f"Features with no image (their recall cannot be measured): {', '.join(absent)}."]
    for field in ("technique", "material", "mechanism"):
        if card.get(field):
            lines += ["", f"{field}: " + ", ".join(f"{k} {v}" for k, v in card[field].items())]
    lines += ["", *expert_lines(card.get("expert"))] if card.get("expert") else []
    top = list(card["sources"].items())[:10]
    lines += ["", "Sources (most items first): " + ", ".join(f"{k} ({v})" for k, v in top)
              + (" …" if len(card["sources"]) > 10 else "")]
    return "\n".join(lines) + "\n"


def expert_lines(expert: dict | None) -> list[str]:
    """How the experts agreed on this benchmark (its card from dataset_builders.review benchmark); [] if unknown."""
    if not expert:
        return []
    ag, adj = expert.get("agreement") or {}, expert.get("adjudication") or {}
    kappa, ci = ag.get("kappa"), ag.get("kappa_ci") or [None, None]
    interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci[0] is not None else ""
    return [f"Expert agreement on this benchmark: Cohen's kappa {'n/a' if kappa is None else f'{kappa:.3f}'}"
            f"{interval} between {expert.get('n_annotators', '?')} annotators (raw agreement "
            f"{ag.get('agreement', float('nan')):.3f}), {adj.get('adjudicated', '?')} image(s) adjudicated; "
            f"selection seed {(expert.get('selection') or {}).get('seed')}. A model cannot be measured more "
            "precisely than the experts agree."]


def _expert_card(csv_path: Path) -> dict | None:
    """The benchmark card written beside the CSV (<stem>.card.json), if any."""
    path = csv_path.with_name(csv_path.stem + ".card.json")
    if not path.exists():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchmarkError(str(path), [f"unreadable benchmark card ({exc})"]) from None
    if not isinstance(card, dict):
        raise BenchmarkError(str(path), ["the benchmark card is not a JSON object"])
    return card


# --- loading -----------------------------------------------------------------------------------------

def _inside(root: Path, rel: str) -> tuple[Path | None, str]:
    """The resolved image path if rel stays inside root, else (None, reason)."""
    if not rel:
        return None, "empty file path"
    if PurePosixPath(rel).is_absolute() or Path(rel).is_absolute():
        return None, f"absolute path {rel!r} refused (paths are relative to the benchmark folder)"
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        return None, f"path {rel!r} leads outside the benchmark folder"
    return path, ""


def _image_sha256(path: Path) -> tuple[str | None, str]:
    """sha256 of a readable image file, or (None, reason)."""
    if not path.is_file():
        return None, "image file not found"
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        return None, f"unreadable image ({type(exc).__name__}: {exc})"
    return hashlib.sha256(data).hexdigest(), ""


def _features(cells: list[str]) -> tuple[tuple[str, ...], list[str]]:
    names, unknown = [], []
    for cell in cells:
        if not cell.strip():
            continue
        name = canonicalize(cell)
        (unknown if name is None else names).append(cell.strip() if name is None else name)
    return tuple(sort_features(names)), unknown


def _find_meta(folder: Path, split: str, name: str | None) -> Path:
    for candidate in (folder, folder / "dataset"):
        metas = sorted(candidate.glob(f"*_{split}_meta.jsonl"))
        if name is not None:
            metas = [m for m in metas if m.name == f"{name}_{split}_meta.jsonl"]
        if len(metas) == 1:
            return metas[0]
        if len(metas) > 1:
            raise BenchmarkError(str(folder), [f"several {split} splits ({', '.join(m.name for m in metas)}): "
                                               "pass name=<dataset name>"])
    csvs = sorted(folder.glob("*.csv"))
    hint = f"; or pass the CSV: {csvs[0]}" if csvs else ""
    raise BenchmarkError(str(folder), [f"no *_{split}_meta.jsonl here or in dataset/{hint}"])


CLASS_COLUMNS = (("technique", "microscopy_technique"), ("material", "material_category"),
                 ("mechanism", "failure_mechanism"))


def _class_labels(row: dict) -> tuple[dict[str, str | None], list[str]]:
    """The canonical class labels of a CSV row / meta record (empty cell: None) and the problems found."""
    labels: dict[str, str | None] = {}
    problems: list[str] = []
    for column, task_name in CLASS_COLUMNS:
        task = get_task(task_name)
        value = str(row.get(column) or "").strip()
        labels[column] = canonical_choice(task, value) if value else None
        if value and labels[column] is None:
            problems.append(f"unknown {column} {value!r}; valid: {', '.join(task.labels)}")
    return labels, problems


def load_builder_split(folder: Path, split: str = "test", name: str | None = None) -> Benchmark:
    """A split exported by dataset_builders.export (<name>_<split>_meta.jsonl + images)."""
    meta = _find_meta(Path(folder), split, name)
    root = meta.parent.resolve()
    vocab = set(canonical_names())
    items: list[BenchmarkItem] = []
    problems: list[str] = []
    seen: set[str] = set()
    # "\n" only: the export writes ensure_ascii=False, so U+2028/U+2029/U+0085 of a caption stay raw in its line
    for number, line in enumerate(text_lines(meta.read_text(encoding="utf-8")), 1):
        if not line.strip():
            continue
        where = f"{meta.name} line {number}"
        try:
            rec = json.loads(line)
            item_id, image, feats = rec["item_id"], rec["image"], rec["features"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            problems.append(f"{where}: not a meta record ({exc})")
            continue
        unknown = [f for f in feats if f not in vocab]
        if unknown:
            problems.append(f"{where} (item {item_id}): unknown feature(s) {unknown}")
        if item_id in seen:
            problems.append(f"{where}: duplicate item_id {item_id!r}")
        seen.add(item_id)
        path, why = _inside(root, image)
        digest, why = (None, why) if path is None else _image_sha256(path)
        if digest is None:
            problems.append(f"{where} (item {item_id}, image {image}): {why}")
            continue
        if unknown:
            continue
        prov = rec.get("provenance") or {}
        source = prov.get("source_pdf") or ",".join(rec.get("paper_ids") or [])
        classes, bad = _class_labels(rec)  # issue 14: optional technique/material/mechanism keys
        if bad:
            problems += [f"{where} (item {item_id}): {b}" for b in bad]
            continue
        items.append(BenchmarkItem(item_id=item_id, image=image, image_sha256=digest,
                                   features=tuple(sort_features(feats)), source=source,
                                   label_origin=rec.get("label_origin") or "", location=where, **classes,
                                   caption=str(rec.get("caption") or ""),
                                   excerpts=tuple(str(e) for e in rec.get("excerpts") or ())))
    if problems:
        raise BenchmarkError(str(meta), problems)
    if not items:
        raise BenchmarkError(str(meta), ["no items"])
    return Benchmark(name=meta.name.removesuffix("_meta.jsonl"), kind="builder_split", root=root, items=items)


def load_csv(csv_path: Path, folder: Path | None = None) -> Benchmark:
    """A folder of images + a CSV of expert labels (images resolve against `folder`, default the CSV's folder)."""
    csv_path = Path(csv_path)
    root = Path(folder if folder is not None else csv_path.parent).resolve()
    problems: list[str] = []
    items: list[BenchmarkItem] = []
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkError(str(csv_path), [f"cannot read the CSV ({exc})"]) from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in ("file", "features") if c not in header]
    if missing:
        raise BenchmarkError(str(csv_path), [f"header (row 1) lacks column(s) {missing}; has {header}"])
    reader.fieldnames = header
    ignored = [h for h in header if h not in CSV_COLUMNS]
    seen_ids: dict[str, int] = {}
    seen_files: dict[str, int] = {}
    for row in reader:
        number = reader.line_num
        file = (row.get("file") or "").strip()
        where = f"{csv_path.name} row {number}" + (f" (file {file})" if file else "")
        row_problems: list[str] = []
        if None in row:
            row_problems.append(f"{len(row[None])} cell(s) more than the header has")
        feats, unknown = _features((row.get("features") or "").split(";"))
        if unknown:
            row_problems.append(f"unknown feature(s) {unknown} (not in the vocabulary, nor a synonym)")
        labels, bad = _class_labels(row)
        row_problems += bad
        given_id = (row.get("item_id") or "").strip()
        item_id = given_id or file
        path, why = _inside(root, file)
        digest, why = (None, why) if path is None else _image_sha256(path)
        if digest is None:
            row_problems.append(why)
        rel = path.relative_to(root).as_posix() if path is not None else file
        for key, seen, what in ((given_id, seen_ids, "item_id"), (rel, seen_files, "file")):
            if key and key in seen:
                row_problems.append(f"duplicate {what} {key!r} (first in row {seen[key]})")
            seen.setdefault(key, number)
        if row_problems:
            problems += [f"{where}: {p}" for p in row_problems]
            continue
        items.append(BenchmarkItem(item_id=item_id, image=rel, image_sha256=digest, features=feats,
                                   **labels, source=(row.get("source") or "").strip(), label_origin="expert",
                                   location=f"{csv_path.name} row {number}",
                                   caption=(row.get("caption") or "").strip(),
                                   excerpts=tuple(e.strip() for e in (row.get("excerpts") or "")
                                                  .split(EXCERPT_SEPARATOR) if e.strip())))
    if problems:
        raise BenchmarkError(str(csv_path), problems)
    if not items:
        raise BenchmarkError(str(csv_path), ["no data rows"])
    return Benchmark(name=csv_path.stem, kind="csv", root=root, items=items, ignored_columns=ignored,
                     expert_card=_expert_card(csv_path))


def load_benchmark(path: Path, csv_file: Path | None = None, split: str = "test",
                   name: str | None = None) -> Benchmark:
    """Load (a) a builder split from a dataset/--out folder or (b) a CSV (path to it, or folder + csv_file)."""
    path = Path(path)
    if csv_file is not None:
        csv_file = Path(csv_file)
        return load_csv(csv_file if csv_file.is_absolute() else path / csv_file, folder=path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_csv(path)
    if path.is_dir():
        return load_builder_split(path, split=split, name=name)
    raise BenchmarkError(str(path), ["not a dataset folder nor a .csv file"])
