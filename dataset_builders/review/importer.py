"""Bring an expert review back: Label Studio JSON-MIN export -> expert labels that win -> label audit.

Reads a JSON-MIN export (a file, or pulled through GET /api/projects/{id}/export?exportType=JSON_MIN). Its
records are the task data we exported (item_id, vocabulary_version, label_origin, label_features) plus the
annotation, in label_studio_sdk.converter's JSON-MIN shape (checked in 1.23.2: ``convert_to_json_min`` and
``prettify_result``): ``features`` is a string for one choice or {"choices": [...]} for several (absent when
nothing was chosen), ``note`` a string (or {"text": [...]}), ``annotator`` the e-mail (or user id),
``annotation_id``, ``created_at``, ``updated_at``, ``lead_time``; one record per annotation.

Writes OUT/review/expert_labels.jsonl (manual.ExpertLabel, one per item: the latest annotation wins; an
earlier import's labels for other items are kept), which the items stage applies over every other label
(manual.apply_expert_labels), and OUT/review/audit.json + audit.md: agreement, Cohen's kappa per feature
and the per-feature confusion of the exported labels (LLM or caption rules) against the expert, which the
dataset card shows. An export made with another vocabulary version is refused, naming both versions.

Usage:
    python -m dataset_builders.review import --out runs/ds1 --export project-1-at-2026-11-01.json
    python -m dataset_builders.review import --out runs/ds1 --url http://127.0.0.1:8080 --token $LS_TOKEN --project 1
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from dataset_builders.labelling.audit import Audit, audit
from dataset_builders.manual import EXPERT_LABELS_NAME, ExpertLabel, read_expert_labels
from dataset_builders.records import LabelRecord
from dataset_builders.review.label_studio import FEATURES_TAG, NOT_FRACTOGRAPH, NOTE_TAG
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import write_json_atomic, write_jsonl_atomic, write_text_atomic
from fracto_core.vocabulary import VOCABULARY_VERSION, canonical_names, sort_features

AUDIT_JSON = "audit.json"
AUDIT_MD = "audit.md"


class ReviewImportError(ValueError):
    """The export cannot be imported; the message names the file, the record and the reason."""


def _choices(value, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict) and isinstance(value.get("choices"), list):
        return [str(c) for c in value["choices"]]
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        return list(value)
    raise ReviewImportError(f"{where}: '{FEATURES_TAG}' is {value!r}; expected a choice or {{'choices': [...]}}")


def _text(value) -> str:
    if isinstance(value, dict):
        value = value.get("text", "")
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value)
    return str(value or "")


def _reviewer(annotator, given: str | None) -> str:
    """The --reviewer name wins over a bare Label Studio user id (what a JSON-MIN file holds); an e-mail is kept."""
    if isinstance(annotator, int) or annotator in (None, ""):
        return given or (f"label-studio user {annotator}" if annotator not in (None, "") else "unknown")
    return str(annotator)


def parse_export(records: list, source: str, reviewer: str | None = None) -> list[ExpertLabel]:
    """Expert labels from JSON-MIN records (latest annotation per item); raises ReviewImportError for bad input."""
    if not isinstance(records, list):
        raise ReviewImportError(f"{source}: not a JSON-MIN export (expected a JSON list of records)")
    known = set(canonical_names())
    imported_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    latest: dict[str, ExpertLabel] = {}
    for n, rec in enumerate(records, 1):
        where = f"{source}: record {n}" + (f" (task {rec.get('id')})" if isinstance(rec, dict) else "")
        if not isinstance(rec, dict) or "item_id" not in rec:
            raise ReviewImportError(f"{where}: no item_id; this export is not of a FractoVLM review project")
        version = rec.get("vocabulary_version")
        if version != VOCABULARY_VERSION:
            raise ReviewImportError(
                f"{where}: exported with vocabulary version {version!r}, but this code uses {VOCABULARY_VERSION!r}; "
                "its choices may name other features. Re-export the sample with this version "
                "(python -m dataset_builders.review export ...) and review it again.")
        chosen = _choices(rec.get(FEATURES_TAG), where)
        unknown = [c for c in chosen if c not in known and c != NOT_FRACTOGRAPH]
        if unknown:
            raise ReviewImportError(f"{where}: choice(s) {unknown} are not in vocabulary {VOCABULARY_VERSION}")
        not_fracto = NOT_FRACTOGRAPH in chosen
        when = str(rec.get("updated_at") or rec.get("created_at") or "")
        label = ExpertLabel(
            item_id=str(rec["item_id"]), features=sort_features([c for c in chosen if c != NOT_FRACTOGRAPH]),
            not_fractograph=not_fracto, note=_text(rec.get(NOTE_TAG)),
            reviewer=_reviewer(rec.get("annotator"), reviewer), reviewed_at=when, imported_at=imported_at,
            source=f"{source}#task={rec.get('id')},annotation={rec.get('annotation_id')}",
            vocabulary_version=version, previous_features=list(rec.get("label_features") or []),
            previous_origin=str(rec.get("label_origin") or ""))
        old = latest.get(label.item_id)
        if old is None or label.reviewed_at >= old.reviewed_at:
            latest[label.item_id] = label
    return [latest[i] for i in sorted(latest)]


def load_export(path: Path) -> list:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReviewImportError(f"{path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReviewImportError(f"{path}: not JSON ({exc})") from None


def confusion(result: Audit) -> dict[str, dict[str, int]]:
    """Per feature: labels and expert both present / only labels / only expert / neither."""
    return {a.feature: {"both": a.both, "only_labels": a.labels - a.both, "only_expert": a.human - a.both,
                        "neither": result.compared - a.labels - a.human + a.both} for a in result.features}


def review_audit(labels: list[ExpertLabel]) -> dict:
    """The label audit of the exported labels against the expert (items the expert rejected are counted apart)."""
    reviewed = [x for x in labels if not x.not_fractograph]
    rejected = [x for x in labels if x.not_fractograph]
    records = [LabelRecord(item_id=x.item_id, features=sort_features(x.previous_features),
                           origin=x.previous_origin or "unknown",
                           status="labelled" if x.previous_features else "no_features") for x in reviewed]
    result = audit({x.item_id: list(x.features) for x in reviewed}, records)
    data = asdict(result)
    data.update({"reviewed": len(labels), "not_fractograph": len(rejected),
                 "not_fractograph_items": sorted({x.item_id: x.previous_origin for x in rejected}.items()),
                 "reviewers": sorted({x.reviewer for x in labels}), "confusion": confusion(result),
                 "vocabulary_version": VOCABULARY_VERSION})
    return data


def audit_markdown(data: dict) -> str:
    def f(x):
        return "n/a" if x is None else f"{x:.3f}"

    md = [f"# Expert review: {data['reviewed']} image(s) reviewed by {', '.join(data['reviewers']) or 'nobody'}", "",
          f"- vocabulary: `{data['vocabulary_version']}`",
          f"- marked not a fractograph: {data['not_fractograph']}",
          f"- compared: {data['compared']}; label origins: "
          + (", ".join(f"{o} {n}" for o, n in data["origins"].items()) or "none"),
          f"- pooled agreement (image x feature): {f(data['pooled_agreement'])}; "
          f"pooled kappa: {f(data['pooled_kappa'])}",
          f"- exact-set agreement: {f(data['exact_set_agreement'])}; mean Jaccard: {f(data['mean_jaccard'])}", "",
          "| feature | expert | labels | both | only labels | only expert | agreement | kappa |",
          "|---|---|---|---|---|---|---|---|"]
    for a in data["features"]:
        c = data["confusion"][a["feature"]]
        md.append(f"| {a['feature']} | {a['human']} | {a['labels']} | {a['both']} | {c['only_labels']} | "
                  f"{c['only_expert']} | {a['agreement']:.3f} | {f(a['kappa'])} |")
    return "\n".join(md) + "\n"


def import_review(out: Path, records: list, source: str, reviewer: str | None = None) -> dict:
    """Merge the export's expert labels into OUT/review/expert_labels.jsonl and write the audit; returns it."""
    paths = StagePaths(out)
    new = parse_export(records, source, reviewer)
    review_dir = paths.out / "review"
    merged = {x.item_id: x for x in read_expert_labels(review_dir / EXPERT_LABELS_NAME)}
    merged.update({x.item_id: x for x in new})
    write_jsonl_atomic(review_dir / EXPERT_LABELS_NAME, [merged[i] for i in sorted(merged)])
    data = review_audit([merged[i] for i in sorted(merged)])
    data["last_import"] = {"source": source, "records": len(records), "items": len(new)}
    write_json_atomic(review_dir / AUDIT_JSON, data)
    write_text_atomic(review_dir / AUDIT_MD, audit_markdown(data))
    return data
