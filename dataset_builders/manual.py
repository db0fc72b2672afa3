"""Stage 6, manual: the hand-collected rare-feature images (fish-eye, ratchet marks, crazing, ...).

Input: a folder with ``manual.csv`` and the images it names. Columns (header row required, any order,
extra columns ignored)::

    file,features,source,notes
    vhcf/fisheye_01.png,fish-eye; fine granular area,Smith 2021 doi:10.1/x,subsurface origin at inclusion

* ``file``: image path relative to the folder (no absolute paths, no "..", no symlink leading outside);
* ``features``: labels separated by ";" -- canonical names or vocabulary synonyms (case-insensitive);
* ``source``: where the image comes from (becomes the item's paper id "manual:<source>", so the split keeps
  every image of one source together); ``notes``: free text.

Every row is checked before anything is written: a bad row is fatal, and the error names the CSV file,
the row (spreadsheet numbering: the header is row 1) and the reason, for every bad row at once.
Output: stages/manual/<item_id>.jpg|png (JPEG and PNG keep their source bytes; other formats become
JPEG quality 95) and stages/manual/items.json, a JSON list of records.Item sorted by item_id, with
item_id "manual-<first 12 hex of the SHA-256 of the image bytes>". Rows holding the same image bytes
become one item (features and sources merged) and a Problem line.

Usage:
    python -m dataset_builders.build --papers pdfs/ --manual rare_images/ --out runs/ds1
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
from PIL import Image
from tqdm import tqdm

from dataset_builders.config import BuildConfig
from dataset_builders.perceptual_hash import image_phash
from dataset_builders.records import Item, Problem, Record, StageResult
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, write_bytes_atomic, write_json_atomic
from fracto_core.vocabulary import canonical_names, canonicalize, phrase_index, sort_features

STAGE = "manual"
CSV_NAME = "manual.csv"
COLUMNS = ("file", "features", "source", "notes")
ITEMS_NAME = "items.json"
KEPT_FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png"}  # written as their source bytes
JPEG_QUALITY = 95
DEFAULT_MAX_PIXELS = BuildConfig.model_fields["max_image_pixels"].default


class ManualError(ValueError):
    """The manual collection cannot be used; the message lists every bad row."""


@dataclass(frozen=True)
class ManualRow:
    """One validated row of manual.csv, with what was learnt from decoding its image once."""

    row: int  # row in manual.csv, spreadsheet numbering (header = 1)
    file: str  # as written in the CSV, POSIX style, relative to the manual folder
    path: Path  # the image file (inside the manual folder)
    features: tuple[str, ...]  # canonical names, vocabulary order
    source: str
    notes: str
    sha256: str  # of the image file's bytes
    image_format: str  # Pillow format name ("JPEG", "PNG", "TIFF", ...)
    width: int
    height: int
    phash: str

    @property
    def item_id(self) -> str:
        return f"manual-{self.sha256[:12]}"


# --- validation ------------------------------------------------------------------------------------

def _check_path(root: Path, cell: str) -> tuple[Path | None, str]:
    """(image path, "") for a safe existing file under ``root``, else (None, reason)."""
    if PurePosixPath(cell).is_absolute() or PureWindowsPath(cell).is_absolute() or cell.startswith(("/", "\\")):
        return None, f"file {cell!r} is an absolute path; give a path relative to the manual folder"
    parts = PurePosixPath(cell.replace("\\", "/")).parts
    if ".." in parts:
        return None, f"file {cell!r} climbs out of the manual folder ('..' is not allowed)"
    path = root.joinpath(*parts)
    if not os.path.lexists(path):
        return None, f"file {cell!r} not found in {root}"
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        return None, f"file {cell!r} cannot be resolved ({exc})"
    if not resolved.is_relative_to(root.resolve()):
        return None, f"file {cell!r} resolves outside the manual folder (a symlink to {resolved})"
    if not resolved.is_file():
        return None, f"file {cell!r} is not a file"
    return path, ""


def _check_features(cell: str) -> tuple[tuple[str, ...], list[str]]:
    """(canonical features, reasons) for a ';'-separated label cell."""
    labels = [x.strip() for x in cell.split(";") if x.strip()]
    if not labels:
        return (), ["no features given (separate labels with ';')"]
    names: set[str] = set()
    reasons: list[str] = []
    for label in labels:
        name = canonicalize(label)
        if name is None:
            near = difflib.get_close_matches(label.lower(), list(phrase_index()), n=3, cutoff=0.6)
            hint = f"nearest: {', '.join(near)}" if near else f"valid labels: {', '.join(canonical_names())}"
            reasons.append(f"unknown label {label!r} ({hint})")
        else:
            names.add(name)
    return tuple(sort_features(names)), reasons


def _inspect_image(path: Path, max_pixels: int) -> tuple[dict, str]:
    """(facts about the image, "") after one full decode, else ({}, reason)."""
    data = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > max_pixels:
                    return {}, (f"image is {img.width}x{img.height} pixels, more than the limit of {max_pixels} "
                                "(--max-image-pixels)")
                img.load()
                facts = {"sha256": hashlib.sha256(data).hexdigest(), "image_format": img.format or "",
                         "width": img.width, "height": img.height, "phash": image_phash(img)}
    except Exception as exc:  # noqa: BLE001 -- Pillow raises many types for bad files; all mean "unusable"
        return {}, f"not a readable image ({type(exc).__name__}: {exc})"
    return facts, ""


def load_manual(manual_dir: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[ManualRow]:
    """Read and validate ``<manual_dir>/manual.csv`` and every image it names.

    Raises ManualError listing every bad row ("<csv>: row <n>: <reason>"); returns rows in CSV order.
    """
    root = Path(manual_dir)
    csv_path = root / CSV_NAME
    if not csv_path.is_file():
        raise ManualError(f"{csv_path}: not found; a manual collection is a folder with {CSV_NAME} "
                          f"(columns {', '.join(COLUMNS)}) and the images it names")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManualError(f"{csv_path}: not UTF-8 text ({exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[list[str]] = []  # record k is spreadsheet row k + 1 (a quoted cell may span lines)
    try:
        records.extend(reader)
    except csv.Error as exc:  # e.g. a cell over csv.field_size_limit(), a NUL byte
        raise ManualError(f"{csv_path}: row {len(records) + 1}: not readable as CSV ({exc})") from None
    header = records[0] if records else None
    columns = [c.strip().lower() for c in header] if header else []
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise ManualError(f"{csv_path}: row 1 (header): missing column(s) {', '.join(missing)}; "
                          f"expected {', '.join(COLUMNS)}" + (f", found {', '.join(columns)}" if columns else ""))
    where = {c: columns.index(c) for c in COLUMNS}

    rows: list[ManualRow] = []
    errors: list[str] = []
    for n, cells in enumerate(records[1:], start=2):  # spreadsheet numbering, not physical lines
        if not any(c.strip() for c in cells):
            continue
        get = {c: (cells[i].strip() if i < len(cells) else "") for c, i in where.items()}
        reasons: list[str] = []
        features, feature_reasons = _check_features(get["features"])
        reasons += feature_reasons
        path, reason = _check_path(root, get["file"]) if get["file"] else (None, "file is empty")
        facts: dict = {}
        if path is None:
            reasons.append(reason)
        else:
            facts, reason = _inspect_image(path, max_pixels)
            if reason:
                reasons.append(f"file {get['file']!r}: {reason}")
        if reasons:
            errors += [f"{csv_path}: row {n}: {r}" for r in reasons]
            continue
        rows.append(ManualRow(row=n, file=PurePosixPath(get["file"].replace("\\", "/")).as_posix(), path=path,
                              features=features, source=get["source"], notes=get["notes"], **facts))
    if errors:
        raise ManualError(f"manual collection {csv_path}: {len(errors)} problem(s); nothing was written:\n  "
                          + "\n  ".join(errors))
    return rows


# --- writing ---------------------------------------------------------------------------------------

def _jpeg_bytes(path: Path) -> bytes:
    """Re-encode a non-JPEG/PNG image as JPEG q95 (RGB or L; transparency over white, 16-bit scaled)."""
    with Image.open(path) as img:
        img.seek(0)
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            arr = np.asarray(img, dtype=np.float64)
            top = arr.max() or 1.0
            out = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8))
        elif img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            out = Image.new("RGB", rgba.size, (255, 255, 255))
            out.paste(rgba, mask=rgba.getchannel("A"))
        elif img.mode in ("L", "RGB"):
            out = img.copy()
        elif img.mode == "1":
            out = img.convert("L")
        else:
            out = img.convert("RGB")
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _source_id(source: str) -> str:
    return f"manual:{source or 'unspecified'}"


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Validate the manual collection, then copy its images and write stages/manual/items.json."""
    rows = load_manual(config.manual, config.max_image_pixels) if config.manual is not None else []
    csv_name = CSV_NAME
    problems: list[Problem] = []
    by_hash: dict[str, list[ManualRow]] = {}
    for row in rows:
        by_hash.setdefault(row.sha256, []).append(row)

    items: list[Item] = []
    converted = 0
    for same in tqdm(list(by_hash.values()), desc="manual", unit="image", disable=not progress):
        first = same[0]
        features = sort_features({f for r in same for f in r.features})
        for dup in same[1:]:
            differs = "; features merged" if set(dup.features) != set(first.features) else ""
            problems.append(Problem(file=f"{csv_name}:{dup.row}", stage=STAGE, reason="duplicate_image",
                                    detail=f"{dup.file} has the same bytes as {first.file} (row {first.row}); "
                                           f"one item{differs}", item_id=first.item_id))
        if first.image_format in KEPT_FORMATS:
            data, suffix = first.path.read_bytes(), KEPT_FORMATS[first.image_format]
        else:
            data, suffix = _jpeg_bytes(first.path), ".jpg"
            converted += 1
        dest = paths.manual / f"{first.item_id}{suffix}"
        write_bytes_atomic(dest, data)
        items.append(Item(
            item_id=first.item_id,
            image=paths.rel(dest),
            width=first.width,
            height=first.height,
            phash=first.phash,
            paper_ids=sorted({_source_id(r.source) for r in same}),
            features=features,
            label_origin="manual",
            provenance={"source": first.source, "notes": first.notes, "file": first.file,
                        "doi": None, "licence": "unknown", "source_url": None},  # a manual image states no licence
        ))
    items.sort(key=lambda i: i.item_id)
    write_json_atomic(paths.manual / ITEMS_NAME, [i.model_dump(mode="json") for i in items])
    _remove_stale_images(paths, {Path(i.image).name for i in items})
    return StageResult(stage=STAGE, problems=problems, counts={
        "items": len(items), "rows": len(rows), "duplicate_rows": len(rows) - len(items), "converted": converted})


def _remove_stale_images(paths: StagePaths, keep: set[str]) -> None:
    """Images of an earlier run whose row is gone would otherwise linger beside items.json."""
    for f in paths.manual.glob("manual-*"):
        if f.suffix in (".jpg", ".png") and f.name not in keep:
            f.unlink()


# --- expert review labels (dataset_builders.review import) ------------------------------------------

EXPERT_LABELS_NAME = "expert_labels.jsonl"  # in OUT/review/ (outside stages/, so --fresh keeps it)


class ExpertLabel(Record):
    """An expert's verdict on one item, imported from a Label Studio review; it wins over every other label."""

    item_id: str
    features: list[str]  # canonical names, vocabulary order
    not_fractograph: bool = False  # the expert says the image is no fracture surface: the item is dropped
    note: str = ""
    reviewer: str
    reviewed_at: str  # when the annotation was last changed (Label Studio's updated_at)
    imported_at: str
    source: str  # export file or URL, task and annotation ids
    vocabulary_version: str
    previous_features: list[str] = []  # the labels the expert was shown
    previous_origin: str = ""


def read_expert_labels(path: Path) -> list[ExpertLabel]:
    return read_jsonl(path, ExpertLabel) if Path(path).exists() else []


def apply_expert_labels(items: Iterable[Item], path: Path, problems: list[Problem]) -> Iterator[Item]:
    """The items with the expert's labels applied (origin "expert", reviewer and time in the provenance),
    one at a time as they come (the items stage streams them to items.jsonl).

    An item the expert marked "not a fractograph", or left without any feature, is dropped with a Problem
    (appended to ``problems``).
    """
    experts = {x.item_id: x for x in read_expert_labels(path)}
    for item in items:
        x = experts.get(item.item_id)
        if x is None:
            yield item
            continue
        if x.not_fractograph or not x.features:
            reason = "expert_not_fractograph" if x.not_fractograph else "expert_no_features"
            detail = f"reviewed by {x.reviewer} at {x.reviewed_at}" + (f": {x.note}" if x.note else "")
            problems.append(Problem(file=x.source, stage="review", reason=reason, item_id=item.item_id, detail=detail))
            continue
        item.provenance.update({"previous_origin": item.label_origin, "reviewer": x.reviewer,
                                "reviewed_at": x.reviewed_at, "review_source": x.source})
        item.features, item.label_origin = sort_features(x.features), "expert"
        yield item
