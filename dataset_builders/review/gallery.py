"""The static review gallery: one self-contained HTML file to look through a build (and eval runs) offline.

Reads a build (review.collect: items, labels with evidence and origin, captions, excerpts, splits, filter
decisions and reasons; rejected panels too unless ``--kept-only``) and optionally eval run folders
(``<run>/samples.jsonl``, read as plain JSON lines: item_id, model, reference, parsed, scores, error; the last
record per item wins, as in eval.records). Writes one HTML file (default OUT/review/gallery.html) with every
image embedded as a JPEG data URI (longest side <= --thumb px), so it opens from a file:// URL with no server
and no network. In the page: filters by feature, split, origin, filter decision and correctness of the
model answers; j / k or the arrow keys move between the shown items. Images an expert rejected (decision
"expert-rejected", with the reviewer's name) are hidden until "show expert-rejected" is ticked or that
decision is chosen.

Usage:
    python -m dataset_builders.review gallery --out runs/ds1 [--eval runs/eval/qwen-ft ...] [--html gallery.html]
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from PIL import Image

from dataset_builders.review.collect import ReviewItem
from fracto_core.files import text_lines, write_text_atomic
from fracto_core.vocabulary import canonical_names

DEFAULT_THUMB = 640
EXPERT_REJECTED = "expert-rejected"  # the page hides these until asked (gallery.js)
ASSETS = Path(__file__).with_name("gallery_assets")


def image_data_uri(path: Path, max_side: int = DEFAULT_THUMB) -> str | None:
    """A JPEG data URI of the image shrunk to ``max_side``; None when it cannot be read."""
    try:
        with Image.open(path) as img:
            img.thumbnail((max_side, max_side))
            img = img.convert("L" if img.mode in ("1", "L", "I;16", "I", "F") else "RGB")
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=82)
    except (OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def correctness(sample: dict) -> str:
    """correct (exact set) | partial (some right) | wrong | failed (no reply)."""
    if sample.get("error"):
        return "failed"
    scores = sample.get("scores") or {}
    if scores.get("exact"):
        return "correct"
    return "partial" if scores.get("tp") else "wrong"


def read_eval_run(run_dir: Path) -> tuple[str, dict[str, dict]]:
    """(run name, item_id -> last sample record) from <run_dir>/samples.jsonl (a torn last line is skipped)."""
    path = Path(run_dir) / "samples.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; --eval takes a run folder written by python -m eval.run")
    lines = text_lines(path.read_text(encoding="utf-8"))
    samples: dict[str, dict] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):
                continue  # torn by a killed run
            raise ValueError(f"{path}:{n}: not JSON") from None
        if not isinstance(rec, dict) or "item_id" not in rec:
            raise ValueError(f"{path}:{n}: not a sample record (no item_id)")
        if any(not isinstance(rec.get(k, []), list) for k in ("reference", "parsed")):  # the page joins them as lists
            raise ValueError(f"{path}:{n}: not a label-task sample (its reference and parsed labels are not lists; a "
                             "sem_qa run?): --eval takes runs of the label tasks (eval.run without --task sem_qa)")
        samples[str(rec["item_id"])] = rec
    return Path(run_dir).name, samples


def _answers(item_id: str, runs: list[tuple[str, dict[str, dict]]]) -> list[dict]:
    out = []
    for run, samples in runs:
        s = samples.get(item_id)
        if s is not None:
            out.append({"run": run, "model": s.get("model", ""), "reference": s.get("reference", []),
                        "parsed": s.get("parsed", []), "status": correctness(s),
                        "reply": (s.get("raw_reply") or s.get("error") or "")[:2000]})
    return out


def gallery_records(items: list[ReviewItem], runs: list[tuple[str, dict[str, dict]]],
                    thumb: int = DEFAULT_THUMB) -> list[dict]:
    """Plain records for the page; eval samples whose item is not in the build come last, without image."""
    records = []
    for it in items:
        records.append({
            "id": it.item_id, "img": image_data_uri(it.image, thumb), "caption": it.caption, "excerpts": it.excerpts,
            "features": it.features, "origin": it.origin or "unlabelled", "evidence": it.evidence,
            "split": it.split or "none", "paper": it.paper, "decision": _decision(it),
            "rejected_by": it.rejected_by, "rejection": it.rejection,
            "score": it.filter_score, "reasons": it.filter_reasons, "answers": _answers(it.item_id, runs)})
    known = {it.item_id for it in items}
    extra = sorted({i for _, samples in runs for i in samples} - known)
    for item_id in extra:
        records.append({"id": item_id, "img": None, "caption": "(not in this build)", "excerpts": [],
                        "features": [], "origin": "eval only", "evidence": {}, "split": "none", "paper": "",
                        "decision": "none", "rejected_by": "", "rejection": "", "score": None, "reasons": [],
                        "answers": _answers(item_id, runs)})
    return records


def _decision(it: ReviewItem) -> str:
    if it.rejected_by:
        return EXPERT_REJECTED
    return "kept" if it.kept else "rejected"


def render_html(records: list[dict], title: str) -> str:
    """The page: styles and script inlined from gallery_assets/, data as an inert JSON block."""
    data = json.dumps({"items": records, "features": canonical_names()}, ensure_ascii=False)
    data = data.replace("<", "\\u003c")  # no "</script>" can end the block early
    template = (ASSETS / "gallery.html").read_text(encoding="utf-8")
    return (template.replace("{{TITLE}}", html.escape(title))
            .replace("{{STYLE}}", (ASSETS / "gallery.css").read_text(encoding="utf-8"))
            .replace("{{SCRIPT}}", (ASSETS / "gallery.js").read_text(encoding="utf-8"))
            .replace("{{DATA}}", data))


def write_gallery(dest: Path, items: list[ReviewItem], run_dirs: list[Path] = (), title: str = "FractoVLM review",
                  thumb: int = DEFAULT_THUMB) -> dict:
    """Write the gallery HTML; returns counts for the summary."""
    runs = [read_eval_run(r) for r in run_dirs]
    records = gallery_records(items, runs, thumb)
    write_text_atomic(dest, render_html(records, title))
    return {"items": len(records), "images": sum(r["img"] is not None for r in records),
            "expert_rejected": sum(r["decision"] == EXPERT_REJECTED for r in records),
            "with_answers": sum(bool(r["answers"]) for r in records), "bytes": Path(dest).stat().st_size}
