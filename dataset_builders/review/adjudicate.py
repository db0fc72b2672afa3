"""The expert benchmark, steps 2 and 3: agreement of the two annotators, adjudication, the benchmark and its card.

Step 2 (``agree``): the two JSON-MIN exports (one per annotator project) -> OUT/benchmark/answers.json,
agreement.json + agreement.md (review.agreement: kappa per feature and overall, raw agreement, confusion,
bootstrap intervals) and adjudication_tasks.json: one task per image the two answered differently (features,
"not a fractograph", technique, material or mechanism), both answers shown as text beside the image; with a
Label Studio client also the adjudication project.

Step 3 (``finish``): the adjudication export -> consensus.jsonl (the agreed answer, or the adjudicator's), the
benchmark folder OUT/benchmark/set/ holding images/ (copies of the pool images), benchmark.csv (the CSV
``eval.run --benchmark`` reads: file, features, item_id, technique, material, mechanism, source, caption,
excerpts) and benchmark.card.json + .md (selection rule and seed, pool provenance, class distribution,
techniques and magnifications where known, protocol, annotators, kappa, adjudication count), which eval.run
copies into its run card. Images the consensus calls "not a fractograph" are left out and counted.

Usage:
    python -m dataset_builders.review benchmark agree --out runs/ds1 --export-a a.json --export-b b.json
    python -m dataset_builders.review benchmark finish --out runs/ds1 --export adjudication.json
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import Counter
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from dataset_builders import holdout
from dataset_builders.records import Problem
from dataset_builders.review import label_studio as ls
from dataset_builders.review.agreement import agreement, agreement_markdown
from dataset_builders.review.benchmark import (CLASS_CHOICES, SLOTS, Answer, PoolImage, bench_dir, label_config,
                                               load_json, load_pool, project_title)
from dataset_builders.review.collect import ReviewInputError
from dataset_builders.split import dropped_path
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, write_json_atomic, write_text_atomic
from fracto_core.vocabulary import VOCABULARY_VERSION, canonical_names, rare_names

SET_DIR = "set"
CSV_NAME = "benchmark.csv"
CARD_JSON = "benchmark.card.json"
CARD_MD = "benchmark.card.md"
ADJUDICATION_VIEW = ('  <Header value="Annotator A answered"/>\n  <Text name="answer_a" value="$answer_a"/>\n'
                     '  <Header value="Annotator B answered"/>\n  <Text name="answer_b" value="$answer_b"/>\n'
                     '  <Header value="Your decision (the consensus label) below"/>\n')
PROTOCOL = ("two experts label every image independently in projects of their own (Label Studio), blind to each "
            "other, to every model and to the build's labels; agreement is measured before any discussion; every "
            "image they answered differently is decided by an adjudicator who sees both answers (consensus)")


def _differs(a: Answer, b: Answer) -> bool:
    return a.labels != b.labels or a.classes() != b.classes()


def agree(out: Path, a: dict[str, Answer], b: dict[str, Answer], client: ls.LabelStudioClient | None = None,
          n_resamples: int = 1000, seed: int = 0, title: str = "FractoVLM benchmark") -> dict:
    """Agreement + adjudication tasks (+ project with a client); returns the agreement data."""
    dest = bench_dir(out)
    sample = load_json(dest / "sample.json")
    drawn = [x["item_id"] for x in sample["items"]]
    missing = {slot: [i for i in drawn if i not in ans] for slot, ans in zip(SLOTS, (a, b))}
    if any(missing.values()):
        raise ReviewInputError("not every sampled image is annotated by both: "
                               + "; ".join(f"annotator {s} lacks {len(m)} ({', '.join(m[:5])})"
                                           for s, m in missing.items() if m))
    labels = [*canonical_names(), ls.NOT_FRACTOGRAPH]
    data = agreement([set(a[i].labels) for i in drawn], [set(b[i].labels) for i in drawn], labels,
                     {f: [a[i].classes()[f] for i in drawn] for f in CLASS_CHOICES},
                     {f: [b[i].classes()[f] for i in drawn] for f in CLASS_CHOICES}, n_resamples, seed)
    names = [sample["annotators"][s] for s in SLOTS]
    seen = {s: sorted({x.annotator for x in ans.values()}) for s, ans in zip(SLOTS, (a, b))}
    shared = sorted((set(seen["A"]) & set(seen["B"])) - {""})
    if shared:
        raise ReviewInputError(f"{', '.join(shared)} answered in both annotators' projects: the agreement would not "
                               "be between two experts; check the exports (--export-a / --export-b)")
    disagreements = [i for i in drawn if _differs(a[i], b[i])]
    data.update({"annotators": sample["annotators"], "label_studio_users": seen, "disagreements": disagreements})
    tasks_by_id = {t["data"]["item_id"]: t for t in load_json(dest / "tasks.json")}
    adjudication = [{"data": {**tasks_by_id[i]["data"], "answer_a": a[i].text(), "answer_b": b[i].text()}}
                    for i in disagreements]
    write_json_atomic(dest / "answers.json", {s: {i: asdict(x) for i, x in sorted(ans.items())}
                                              for s, ans in zip(SLOTS, (a, b))})
    write_json_atomic(dest / "agreement.json", data)
    write_text_atomic(dest / "agreement.md", agreement_markdown(data, names))
    write_json_atomic(dest / "adjudication_tasks.json", adjudication)
    write_text_atomic(dest / "adjudication_config.xml", label_config(ADJUDICATION_VIEW))
    if client is not None and adjudication:
        data["adjudication_project"] = adjudication_project(client, dest, adjudication, sample["storage"], title)
    return data


def adjudication_project(client: ls.LabelStudioClient, dest: Path, tasks: list[dict], storage: str,
                         title: str) -> int:
    """The adjudication project; one made earlier for the same disagreements (projects.json) is reused."""
    record = dest / "projects.json"
    info = load_json(record) if record.exists() else {"url": client.url}
    items = [t["data"]["item_id"] for t in tasks]
    if info.get("url") == client.url and info.get("adjudication") and info.get("adjudication_items") == items:
        return int(info["adjudication"])
    project = client.create_project(project_title(title, "adjudication"), label_config(ADJUDICATION_VIEW),
                                    "FractoVLM expert benchmark: decide the images the annotators answered "
                                    "differently; both answers are shown")
    client.add_local_storage(project, Path(storage))
    client.import_tasks(project, tasks)
    write_json_atomic(record, {**info, "adjudication": project, "adjudication_items": items})
    return project


def consensus(out: Path, adjudicated: dict[str, Answer]) -> list[dict]:
    """One consensus record per sampled image: the agreed answer or the adjudicator's; error if any is missing."""
    dest = bench_dir(out)
    answers = load_json(dest / "answers.json")
    agreement_data = load_json(dest / "agreement.json")
    missing = [i for i in agreement_data["disagreements"] if i not in adjudicated]
    if missing:
        raise ReviewInputError(f"{len(missing)} disagreement(s) not adjudicated yet: {', '.join(missing[:10])}")
    records = []
    for x in load_json(dest / "sample.json")["items"]:
        i = x["item_id"]
        a = Answer(**answers["A"][i])
        decided = adjudicated.get(i) if i in agreement_data["disagreements"] else None
        final = decided or a
        records.append({"item_id": i, **{k: v for k, v in asdict(final).items() if k not in ("item_id", "when")},
                        "decided_by": "adjudication" if decided else "agreement",
                        "answer_a": answers["A"][i]["labels"], "answer_b": answers["B"][i]["labels"]})
    return records


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    cols = ["file", "features", "item_id", "technique", "material", "mechanism", "source", "caption", "excerpts"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _pool_provenance(pool: list[PoolImage], used: set[str]) -> list[dict]:
    papers: dict[str, dict] = {}
    for p in pool:
        key = p.pool.source_pdf or ",".join(p.pool.paper_ids)
        row = papers.setdefault(key, {"source_pdf": p.pool.source_pdf, "doi": p.pool.doi, "title": p.pool.title,
                                      "licence": p.pool.licence, "pool_images": 0, "benchmark_images": 0})
        row["pool_images"] += 1
        row["benchmark_images"] += p.pool.item_id in used
    return [papers[k] for k in sorted(papers)]


def _kept_out(out: Path) -> dict:
    """What this build kept out of its train/val/test for the pool (its dataset card says the same)."""
    paths = StagePaths(out)
    dropped = read_jsonl(dropped_path(paths), Problem) if dropped_path(paths).exists() else []
    data = holdout.card_data(paths, dropped)
    return {"by_paper": data["kept_out_by_paper"], "by_hash": data["kept_out_by_hash"]}


def finish(out: Path, adjudicated: dict[str, Answer], name: str = "expert_benchmark") -> dict:
    """consensus.jsonl, the benchmark folder (images, CSV) and its card; returns the card."""
    dest = bench_dir(out)
    records = consensus(out, adjudicated)
    sample = load_json(dest / "sample.json")
    agreement_data = load_json(dest / "agreement.json")
    pool = {p.pool.item_id: p for p in load_pool(out)}
    gone = [r["item_id"] for r in records if r["item_id"] not in pool]
    if gone:  # the pool was built again since `benchmark export` drew the sample: nothing is written
        raise ReviewInputError(f"{len(gone)} sampled image(s) are no longer in the build's pool ({', '.join(gone[:5])}): "
                               f"it was rebuilt after `benchmark export`; finish against the build the sample was "
                               f"drawn from, or export a new sample")
    write_jsonl_atomic_dicts(dest / "consensus.jsonl", records)
    set_dir = dest / SET_DIR
    (set_dir / "images").mkdir(parents=True, exist_ok=True)
    rows, kept = [], []
    for r in records:
        if ls.NOT_FRACTOGRAPH in r["labels"]:
            continue
        p = pool[r["item_id"]]
        rel = f"images/{r['item_id']}{p.review.image.suffix.lower()}"
        shutil.copyfile(p.review.image, set_dir / rel)
        kept.append(r)
        rows.append({"file": rel, "features": ";".join(r["labels"]), "item_id": r["item_id"],
                     "technique": r["technique"] or "", "material": r["material"] or "",
                     "mechanism": r["mechanism"] or "", "source": p.pool.doi or p.pool.source_pdf,
                     "caption": p.review.caption, "excerpts": "||".join(p.review.excerpts)})
    if not rows:
        raise ReviewInputError("the consensus rejects every image as not a fractograph: no benchmark to write")
    write_text_atomic(set_dir / CSV_NAME, _csv(rows))
    features = Counter(f for r in kept for f in r["labels"])
    card = {
        "name": name, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "vocabulary_version": VOCABULARY_VERSION, "n_items": len(rows),
        "selection": {k: sample[k] for k in ("rule", "seed", "n_requested", "n", "rare_min", "features",
                                             "techniques", "materials")},
        "pool": {"build": str(Path(out).resolve()), "images": len(pool),
                 "papers": _pool_provenance(list(pool.values()), {r["item_id"] for r in records}),
                 "kept_out_of_training": _kept_out(out)},
        "class_distribution": {f: features[f] for f in canonical_names() if features[f]},
        "rare_features": {f: features[f] for f in rare_names() if features[f]},
        "techniques": dict(Counter(r["technique"] or "(not given)" for r in kept).most_common()),
        "materials": dict(Counter(r["material"] or "(not given)" for r in kept).most_common()),
        "mechanisms": dict(Counter(r["mechanism"] or "(not given)" for r in kept).most_common()),
        "magnifications": dict(Counter(pool[r["item_id"]].magnification or "(not stated)"
                                       for r in kept).most_common()),
        "protocol": PROTOCOL, "blind": "no task carried a prediction or the build's labels",
        "text_shown": sample.get("text_shown", True),  # caption + citing text beside the image, or the image alone
        "annotators": agreement_data["annotators"], "n_annotators": len(agreement_data["annotators"]),
        "agreement": {k: agreement_data[k] for k in ("n_images", "kappa", "kappa_ci", "agreement", "agreement_ci",
                                                      "exact_set_agreement", "exact_set_agreement_ci",
                                                      "n_resamples", "seed")}
        | {"per_feature_kappa": {f: r["kappa"] for f, r in agreement_data["per_label"].items()},
           "classes": {f: {"kappa": r["kappa"], "agreement": r["agreement"]}
                       for f, r in agreement_data["classes"].items()}},
        "adjudication": {"disagreements": len(agreement_data["disagreements"]),
                         "adjudicated": sum(r["decided_by"] == "adjudication" for r in records),
                         "adjudicators": sorted({adjudicated[i].annotator for i in agreement_data["disagreements"]
                                                 if i in adjudicated})},
        "not_fractograph": len(records) - len(kept),
    }
    write_json_atomic(set_dir / CARD_JSON, card)
    write_text_atomic(set_dir / CARD_MD, card_markdown(card))
    return card


def write_jsonl_atomic_dicts(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def card_markdown(card: dict) -> str:
    ag = card["agreement"]

    def f(x):
        return "n/a" if x is None else f"{x:.3f}"

    def ci(iv):
        return "" if iv[0] is None else f" [{iv[0]:.2f}, {iv[1]:.2f}]"

    sel = card["selection"]
    md = [f"# Expert benchmark `{card['name']}`: {card['n_items']} images", "",
          f"- selection: {sel['rule']}; seed {sel['seed']}, {sel['n']} drawn of {card['pool']['images']} pool "
          f"images (rare minimum {sel['rare_min']})",
          f"- pool: {len(card['pool']['papers'])} held-out paper(s) of build `{card['pool']['build']}`; kept out of "
          f"its train/val/test: {card['pool']['kept_out_of_training']['by_paper']} image(s) by paper, "
          f"{card['pool']['kept_out_of_training']['by_hash']} near-duplicate(s) by perceptual hash",
          f"- protocol: {card['protocol']}; the annotators saw "
          + ("the image with its caption and citing text" if card["text_shown"] else "the image alone"),
          f"- annotators: {card['n_annotators']} ({', '.join(card['annotators'].values())}); "
          f"Cohen's kappa {f(ag['kappa'])}{ci(ag['kappa_ci'])}, raw agreement {f(ag['agreement'])}"
          f"{ci(ag['agreement_ci'])}, exact-set agreement {f(ag['exact_set_agreement'])} over {ag['n_images']} images",
          f"- adjudication: {card['adjudication']['adjudicated']} of {card['adjudication']['disagreements']} "
          f"disagreement(s) decided by {', '.join(card['adjudication']['adjudicators']) or '-'}",
          f"- left out as not a fractograph (consensus): {card['not_fractograph']}", "",
          "| feature | images | kappa between annotators |", "|---|---:|---:|"]
    for name, k in card["class_distribution"].items():
        md.append(f"| {name}{' *' if name in card['rare_features'] else ''} | {k} | "
                  f"{f(ag['per_feature_kappa'].get(name))} |")
    for key in ("techniques", "materials", "mechanisms", "magnifications"):
        md += ["", f"{key}: " + ", ".join(f"{k} {v}" for k, v in card[key].items())]
    md += ["", "| paper | DOI | licence | pool images | in benchmark |", "|---|---|---|---:|---:|"]
    md += [f"| {p['source_pdf']} | {p['doi'] or ''} | {p['licence'] or 'unknown'} | {p['pool_images']} | "
           f"{p['benchmark_images']} |" for p in card["pool"]["papers"]]
    return "\n".join(md) + "\n"
