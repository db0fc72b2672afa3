"""The expert benchmark, step 1: a seeded stratified sample of the held-out pool, exported for two blind annotators.

Reads the build's held-out pool (OUT/stages/holdout.jsonl, dataset_builders.holdout) and its review items
(caption, excerpts, image). The sample: first every rare feature (vocabulary ``rare``) present in the pool gets
up to ``rare_min`` images (seeded), then the feature round robin of review.sample fills the rest, so a rare
feature is measured at all; the build's labels steer the selection only and are never shown.

Writes OUT/benchmark/: config.xml (the features of the vocabulary, "not a fractograph", and optional single
choices for technique, material and failure mechanism), tasks.json (one task per image, no prediction: the
annotators are blind to every model and to the build's labels), sample.json (rule, seed, per-feature and
per-technique counts) and, with a Label Studio URL, projects.json.

Two annotators, two projects. Label Studio Community 1.23 has no task assignment ("This example only applies to
Label Studio Enterprise and Starter Cloud. Label Studio Community does not have task assignments",
https://api.labelstud.io/tutorials/tutorials/assign-users-to-tasks); its project setting ``maximum_annotations``
(projects/models.py of 1.23.2, default 1) only marks a task done after N annotations, by anybody, and lets the
second annotator see the first's work. So each annotator gets a project of their own holding the same tasks;
that works the same in Community and Enterprise and keeps them blind to each other.

Usage:
    python -m dataset_builders.review benchmark export --out runs/ds1 --n 200 --seed 0 --annotators ann1 ann2
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from dataset_builders.holdout import PoolItem, read_pool
from dataset_builders.labelling.classes import MATERIAL_PHRASES, TECHNIQUE_PHRASES, caption_classes
from dataset_builders.review import label_studio as ls
from dataset_builders.review.collect import ReviewInputError, ReviewItem, collect_items
from dataset_builders.review.importer import ReviewImportError, _choices, _text
from dataset_builders.review.importer import load_export as load_json  # any JSON file, errors naming it
from dataset_builders.review.sample import stratified_sample
from fracto_core.files import write_json_atomic, write_text_atomic
from fracto_core.vocabulary import VOCABULARY_VERSION, canonical_names, rare_names, sort_features

BENCH_DIR = "benchmark"
SLOTS = ("A", "B")
DEFAULT_RARE_MIN = 3
RULE = ("stratified random sample of the held-out pool: up to rare_min images for each rare feature present (seeded "
        "shuffle), then a feature round robin from the least to the most frequent feature (review.sample); strata "
        "from the build's own labels, which the annotators never see")
# The eval tasks' choices (eval.tasks microscopy_technique, material_category, failure_mechanism; a test keeps
# them equal): the benchmark CSV's technique, material and mechanism columns.
CLASS_CHOICES: dict[str, tuple[str, ...]] = {
    "technique": tuple(TECHNIQUE_PHRASES),
    "material": tuple(MATERIAL_PHRASES),
    "mechanism": ("ductile overload", "brittle overload", "fatigue", "very-high-cycle fatigue",
                  "intergranular embrittlement", "creep", "stress-corrosion cracking", "hydrogen embrittlement",
                  "defect-initiated", "undetermined"),
}
_MAGNIFICATION = re.compile(r"(?:[x×]\s?(\d[\d,.]*)\b|\b(\d[\d,.]*)\s?[x×](?![\w-]))", re.IGNORECASE)


def bench_dir(out: Path) -> Path:
    return Path(out) / BENCH_DIR


def label_config(extra: str = "") -> str:
    """The annotators' interface: review's image, texts and feature choices, plus the class questions."""
    blocks = []
    for name, values in CLASS_CHOICES.items():
        blocks.append(f'  <Header value="{name.capitalize()} (optional: leave empty when you cannot tell)"/>')
        blocks.append(f'  <Choices name="{name}" toName="{ls.IMAGE_TAG}" choice="single" showInline="true">')
        blocks += [f"    <Choice value={quoteattr(v)}/>" for v in values]
        blocks.append("  </Choices>")
    return ls.label_config().replace("</View>", extra + "\n".join(blocks) + "\n</View>")


def magnification(caption: str) -> str | None:
    """"x500" / "500x" / "×2,000" named in the caption, as "500x"; None when it names none or several."""
    found = {(a or b).replace(",", "").rstrip(".") for a, b in _MAGNIFICATION.findall(caption or "")}
    return f"{found.pop()}x" if len(found) == 1 else None


@dataclass
class PoolImage:
    pool: PoolItem
    review: ReviewItem
    technique: str | None
    material: str | None
    magnification: str | None


def load_pool(out: Path) -> list[PoolImage]:
    """The pool with its review context; a ReviewInputError when the build has none."""
    try:
        pool = read_pool(out)
    except ValueError as exc:
        raise ReviewInputError(str(exc)) from None
    review = {r.item_id: r for r in collect_items(out)}
    missing = [p.item_id for p in pool if p.item_id not in review]
    if missing:
        raise ReviewInputError(f"{out}: pool item(s) {missing[:5]} are not in stages/items.jsonl; rebuild from items")
    images = []
    for p in pool:
        r = review[p.item_id]
        technique, material = caption_classes(r.caption)
        images.append(PoolImage(p, r, technique, material, magnification(r.caption)))
    return images


def draw(pool: list[PoolImage], n: int, seed: int, rare_min: int = DEFAULT_RARE_MIN) -> dict:
    """The sample (item ids in drawing order, each with its stratum) and its record; deterministic in seed."""
    if n < 1:
        raise ValueError(f"sample size must be at least 1 (got {n})")
    feats = {p.pool.item_id: list(p.pool.features) for p in pool}
    rng = random.Random(f"{seed}:benchmark")
    chosen: list[str] = []
    strata: dict[str, str] = {}
    for name in rare_names():
        have = sum(name in feats[i] for i in chosen)
        candidates = sorted(i for i, f in feats.items() if name in f and i not in strata)
        rng.shuffle(candidates)
        for i in candidates[:max(0, rare_min - have)]:
            if len(chosen) < n:
                chosen.append(i)
                strata[i] = f"rare minimum: {name}"
    rest = {i: f for i, f in feats.items() if i not in strata}
    if len(chosen) < n and rest:
        s = stratified_sample(rest, n - len(chosen), seed)
        chosen += s.chosen
        strata.update(s.strata)
        unlabelled = sorted(i for i, f in rest.items() if not f and i not in strata)  # no label: drawn last
        rng.shuffle(unlabelled)
        for i in unlabelled[:n - len(chosen)]:
            chosen.append(i)
            strata[i] = "(no label)"
    by_id = {p.pool.item_id: p for p in pool}
    population = Counter(f for fs in feats.values() for f in fs)
    in_sample = Counter(f for i in chosen for f in feats[i])
    return {
        "rule": RULE, "seed": seed, "n_requested": n, "n": len(chosen), "rare_min": rare_min,
        "pool_images": len(pool), "vocabulary_version": VOCABULARY_VERSION,
        "features": {f: {"pool": population[f], "in_sample": in_sample.get(f, 0), "rare": f in rare_names()}
                     for f in canonical_names() if population.get(f)},
        "techniques": dict(Counter(by_id[i].technique or "(not stated)" for i in chosen).most_common()),
        "materials": dict(Counter(by_id[i].material or "(not stated)" for i in chosen).most_common()),
        "items": [{"item_id": i, "stratum": strata[i]} for i in chosen],
    }


HIDDEN = "(not shown for this benchmark: judge the image alone)"


def make_task(image: PoolImage, document_root: Path, show_text: bool = True) -> dict:
    """One blind task: image and (unless hidden) the paper's text; no prediction, none of the build's labels."""
    r = image.review
    return {"data": {ls.IMAGE_TAG: ls.local_files_url(r.image, document_root),
                     "caption": (r.caption or "(no caption)") if show_text else HIDDEN,
                     "excerpt": ("\n\n".join(r.excerpts) or "(no text cites this figure)") if show_text else HIDDEN,
                     "item_id": r.item_id, "vocabulary_version": VOCABULARY_VERSION}}


def project_title(title: str, suffix: str) -> str:
    """Label Studio 1.23.2 refuses project titles over 50 characters (HTTP 400): the prefix is cut to fit."""
    return f"{title[:49 - len(suffix)].rstrip()} {suffix}"


def create_projects(client: ls.LabelStudioClient, title: str, tasks: list[dict], storage: Path,
                    annotators: list[str], record: Path) -> dict:
    """One project per annotator, same tasks, same config; returns {slot: project id}.

    ``record`` (projects.json) is rewritten after each finished project, and a project it already names for this
    server is kept: an export killed half-way and run again makes no second copy."""
    info = load_json(record) if record.exists() else {}
    made = dict(info.get("annotation") or {}) if info.get("url") == client.url else {}
    for slot, who in zip(SLOTS, annotators):
        if slot in made:
            continue
        project = client.create_project(project_title(title, f"annotator {slot}"), label_config(),
                                        f"FractoVLM expert benchmark, annotator {slot}: {who}; label every image "
                                        f"on your own; vocabulary {VOCABULARY_VERSION}")
        client.add_local_storage(project, storage)
        client.import_tasks(project, tasks)
        made[slot] = project
        write_json_atomic(record, {"url": client.url, "annotation": made})
    return made


def export(out: Path, n: int, seed: int, annotators: list[str], rare_min: int = DEFAULT_RARE_MIN,
           document_root: Path | None = None, client: ls.LabelStudioClient | None = None,
           title: str = "FractoVLM benchmark", show_text: bool = True, replace: bool = False) -> dict:
    """Draw the sample, write config.xml, tasks.json and sample.json; with a client create both projects.

    A benchmark folder that already holds another sample (other seed, size or pool) is refused unless
    ``replace``: its projects may hold annotations that belong to it."""
    if len(annotators) != 2 or len(set(annotators)) != 2:
        raise ReviewInputError(f"--annotators needs two different names (got {annotators})")
    pool = load_pool(out)
    sample = draw(pool, n, seed, rare_min)
    old = bench_dir(out) / "sample.json"
    if old.exists() and not replace and load_json(old).get("items") != sample["items"]:
        prev = load_json(old)
        raise ReviewInputError(f"{old} holds another sample (seed {prev.get('seed')}, {prev.get('n')} images) whose "
                               "projects may already be annotated; pass --replace to draw anew, or use another --out")
    if old.exists() and load_json(old).get("items") != sample["items"]:
        (bench_dir(out) / "projects.json").unlink(missing_ok=True)  # --replace: the old projects are not this sample's
    root = Path(document_root or out).resolve()
    by_id = {p.pool.item_id: p for p in pool}
    picked = [by_id[x["item_id"]] for x in sample["items"]]
    tasks = [make_task(p, root, show_text) for p in picked]
    dest = bench_dir(out)
    sample["annotators"] = {slot: who for slot, who in zip(SLOTS, annotators)}
    storage = ls.storage_dir([p.review.image for p in picked], root)
    sample.update({"document_root": str(root), "storage": str(storage), "text_shown": show_text})
    write_text_atomic(dest / "config.xml", label_config())
    write_json_atomic(dest / "tasks.json", tasks)
    write_json_atomic(dest / "sample.json", sample)
    result = {"sample": sample, "tasks": tasks, "storage": storage, "dest": dest}
    if client is not None:
        result["projects"] = create_projects(client, title, tasks, storage, annotators, dest / "projects.json")
    return result


# --- reading the annotators' answers -----------------------------------------------------------------

@dataclass
class Answer:
    item_id: str
    labels: list[str]  # canonical features, vocabulary order, plus NOT_FRACTOGRAPH when chosen
    technique: str | None = None
    material: str | None = None
    mechanism: str | None = None
    note: str = ""
    annotator: str = ""
    when: str = ""

    def classes(self) -> dict[str, str | None]:
        return {k: getattr(self, k) for k in CLASS_CHOICES}

    def text(self) -> str:
        """How the adjudicator sees this answer."""
        parts = ["features: " + (", ".join(self.labels) or "(none)")]
        parts += [f"{k}: {v}" for k, v in self.classes().items() if v]
        return "; ".join(parts) + (f"; note: {self.note}" if self.note else "")


def _single(value, field: str, where: str) -> str | None:
    chosen = _choices(value, where)
    if not chosen:
        return None
    if len(chosen) > 1 or chosen[0] not in CLASS_CHOICES[field]:
        raise ReviewImportError(f"{where}: {field} {chosen} is not one of {', '.join(CLASS_CHOICES[field])}")
    return chosen[0]


def parse_answers(records, source: str) -> dict[str, Answer]:
    """item id -> the latest answer, from a JSON-MIN export of a benchmark project (ReviewImportError if bad)."""
    if not isinstance(records, list):
        raise ReviewImportError(f"{source}: not a JSON-MIN export (expected a JSON list of records)")
    known = set(canonical_names()) | {ls.NOT_FRACTOGRAPH}
    answers: dict[str, Answer] = {}
    for k, rec in enumerate(records, 1):
        where = f"{source}: record {k}" + (f" (task {rec.get('id')})" if isinstance(rec, dict) else "")
        if not isinstance(rec, dict) or "item_id" not in rec:
            raise ReviewImportError(f"{where}: no item_id; not an export of a FractoVLM benchmark project")
        if rec.get("vocabulary_version") != VOCABULARY_VERSION:
            raise ReviewImportError(f"{where}: vocabulary {rec.get('vocabulary_version')!r}, this code uses "
                                    f"{VOCABULARY_VERSION!r}; export the sample again")
        if "predictions" in rec or "prediction" in rec:
            raise ReviewImportError(f"{where}: the task carries a prediction; benchmark annotators must be blind")
        chosen = _choices(rec.get(ls.FEATURES_TAG), where)
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ReviewImportError(f"{where}: choice(s) {unknown} are not in vocabulary {VOCABULARY_VERSION}")
        labels = sort_features([c for c in chosen if c != ls.NOT_FRACTOGRAPH])
        if ls.NOT_FRACTOGRAPH in chosen:
            labels = [ls.NOT_FRACTOGRAPH]  # "choose this alone": a rejected image names no feature
        ans = Answer(item_id=str(rec["item_id"]), labels=labels, note=_text(rec.get(ls.NOTE_TAG)),
                     annotator=str(rec.get("annotator") or ""),
                     when=str(rec.get("updated_at") or rec.get("created_at") or ""),
                     **{f: _single(rec.get(f), f, where) for f in CLASS_CHOICES})
        old = answers.get(ans.item_id)
        if old is None or ans.when >= old.when:
            answers[ans.item_id] = ans
    return answers
