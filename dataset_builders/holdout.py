"""The held-out pool: papers set aside before the split, so that no image of theirs -- nor a near-duplicate of
one reprinted elsewhere -- reaches train, val or test. The expert benchmark is drawn from this pool
(``python -m dataset_builders.review benchmark``), so a model is never scored on a paper it was trained on.

Three ways to name the pool (BuildConfig; they combine):
  holdout_share  a seeded share of the mined papers (the manual collection is never held out);
  holdout_list   a text file, one entry a line (# comments): a DOI, a PDF file name or path as under --papers,
                 or a paper id (16 hex); an entry that matches no paper is an error naming the line;
  holdout_build  the output folder of another build whose papers all form the pool (a separate folder of PDFs
                 built with ``--holdout-share 1 --to-stage split``): every paper of it (same PDF or same DOI)
                 and every near-duplicate of its images is kept out of this build.

Checked twice: by paper (an item of a held-out paper is pool, whatever other paper reprints it) and by
perceptual hash (an item of a training paper within dedup_max_distance bits of a pool image is dropped, reason
"near_holdout"). Writes stages/holdout.jsonl (one PoolItem per pool image, with its paper's file, DOI, title
and licence where known); the split stage drops the pool from its input and records the drops in
splits_dropped.jsonl, which both cards count.

Usage:
    python -m dataset_builders.build --papers pdfs/ --out runs/ds1 --holdout-share 0.1
    python -m dataset_builders.build --papers pdfs/ --out runs/ds1 --holdout-list heldout_dois.txt
    python -m dataset_builders.build --papers heldout_pdfs/ --out runs/pool --holdout-share 1 --to-stage split
    python -m dataset_builders.build --papers pdfs/ --out runs/ds1 --holdout-build runs/pool
"""

from __future__ import annotations

import random
import re
from pathlib import Path, PurePosixPath

import numpy as np

from dataset_builders.config import BuildConfig
from dataset_builders.records import Item, Problem, Record
from dataset_builders.sources import paper_meta
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, write_jsonl_atomic

POOL_NAME = "holdout.jsonl"
_PAPER_ID = re.compile(r"^[0-9a-f]{16}$")


class HoldoutError(ValueError):
    """The held-out pool cannot be set up (the message names the file, line or folder)."""


class PoolItem(Record):
    """One image of the held-out pool (stages/holdout.jsonl)."""

    item_id: str
    image: str  # relative to the build folder
    phash: str
    features: list[str]  # the build's own labels: used for stratified sampling only, never shown to annotators
    label_origin: str
    paper_ids: list[str]
    source_pdf: str = ""
    doi: str | None = None
    title: str | None = None
    licence: str | None = None  # where the build knows it
    held_out_by: str  # "share" | "list"


def pool_path(paths: StagePaths) -> Path:
    return paths.stages / POOL_NAME


def read_pool(out: Path) -> list[PoolItem]:
    """The pool of a build; a HoldoutError when the build set no paper aside."""
    path = pool_path(StagePaths(out))
    if not path.exists():
        raise HoldoutError(f"{path}: not found; build with --holdout-share, --holdout-list or as a pool build "
                           "(--holdout-share 1 --to-stage split) to set papers aside")
    return read_jsonl(path, PoolItem)


def normalise_doi(doi: str) -> str:
    doi = doi.strip().lower()
    for prefix in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "doi:"):
        if doi.startswith(prefix):
            doi = doi[len(prefix):]
    return doi.strip()


def paper_metadata(paths: StagePaths) -> dict[str, dict]:
    """paper id -> its source_pdf, doi, title, licence, ... (sources.paper_meta) for every panels stage file."""
    files = sorted(paths.panels.glob("*.json")) if paths.panels.exists() else []
    return {f.stem: paper_meta(paths, f.stem) for f in files}  # licence: manifest, XMP or the PDF's own statement


def _listed(path: Path, meta: dict[str, dict]) -> set[str]:
    """Paper ids named by a list file (DOI, PDF name/path or paper id per line)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise HoldoutError(f"--holdout-list {path}: cannot read ({exc})") from None
    by_doi = {normalise_doi(m["doi"]): p for p, m in meta.items() if m.get("doi")}
    by_file: dict[str, set[str]] = {}
    for p, m in meta.items():
        src = PurePosixPath(m["source_pdf"])
        for key in (src.as_posix(), src.name, src.stem):
            by_file.setdefault(key.lower(), set()).add(p)
    chosen: set[str] = set()
    unknown: list[str] = []
    for number, raw in enumerate(lines, 1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        found = ({entry} if entry in meta else set()) or (
            {by_doi[normalise_doi(entry)]} if normalise_doi(entry) in by_doi else set()) or by_file.get(
            entry.lower(), set())
        if not found:
            unknown.append(f"line {number}: {entry!r}")
        chosen |= found
    if unknown:
        raise HoldoutError(f"--holdout-list {path}: {len(unknown)} entr(y/ies) match no mined paper (by DOI, PDF "
                           "file name or paper id): " + "; ".join(unknown))
    return chosen


def _shared(share: float, seed: int, papers: list[str]) -> set[str]:
    if share <= 0:
        return set()
    order = sorted(papers)
    random.Random(f"{seed}:holdout").shuffle(order)
    return set(order[:max(1, round(share * len(order)))])


def _other_build(folder: Path) -> tuple[set[str], set[str], list[tuple[str, str]]]:
    """Paper ids, DOIs and (item id, phash) of another build's pool."""
    pool = read_pool(folder)
    meta = paper_metadata(StagePaths(folder))
    papers = {p for it in pool for p in it.paper_ids}
    dois = {normalise_doi(meta[p]["doi"]) for p in papers if p in meta and meta[p].get("doi")}
    return papers, dois, [(f"{folder.name}:{it.item_id}", it.phash) for it in pool]


def _hashes(values: list[str]) -> np.ndarray:
    return np.array([int(h, 16) for h in values], dtype=np.uint64)


def _near(items: list[Item], refs: list[tuple[str, str]], max_distance: int) -> dict[str, tuple[str, int]]:
    """item id -> (nearest pool image, distance) for items within max_distance bits of a pool image."""
    if not items or not refs:
        return {}
    ref_h = _hashes([h for _, h in refs])
    out: dict[str, tuple[str, int]] = {}
    for start in range(0, len(items), 1024):
        chunk = items[start:start + 1024]
        dist = np.bitwise_count(_hashes([it.phash for it in chunk])[:, None] ^ ref_h[None, :]).astype(np.int64)
        best = dist.argmin(axis=1)
        for it, j, row in zip(chunk, best, dist):
            if row[j] <= max_distance:
                out[it.item_id] = (refs[j][0], int(row[j]))
    return out


def enabled(config: BuildConfig) -> bool:
    """Whether this build sets a held-out pool aside (--holdout-share, --holdout-list or --holdout-build)."""
    return bool(config.holdout_share or config.holdout_list or config.holdout_build)


def set_aside(paths: StagePaths, items: list[Item], config: BuildConfig) -> tuple[list[Item], list[Problem], dict]:
    """Items left for the split, a Problem per item kept out, counts; writes stages/holdout.jsonl."""
    if not enabled(config):
        pool_path(paths).unlink(missing_ok=True)
        return items, [], {}
    meta = paper_metadata(paths)
    mined = sorted({p for it in items for p in it.paper_ids if not p.startswith("manual:")})
    by_share = _shared(config.holdout_share, config.seed, mined)
    by_list = _listed(config.holdout_list, meta) if config.holdout_list else set()
    other_papers, other_dois, other_hashes = (set(), set(), [])
    if config.holdout_build:
        other_papers, other_dois, other_hashes = _other_build(Path(config.holdout_build))
        other_papers |= {p for p, m in meta.items() if m.get("doi") and normalise_doi(m["doi"]) in other_dois}
    held = by_share | by_list
    pool: list[PoolItem] = []
    rest: list[Item] = []
    problems: list[Problem] = []
    n_other = 0
    for it in items:
        papers = set(it.paper_ids)
        if papers & held:
            first = sorted(papers & held)[0]
            m = meta.get(first, {})
            pool.append(PoolItem(item_id=it.item_id, image=it.image, phash=it.phash, features=list(it.features),
                                 label_origin=it.label_origin, paper_ids=list(it.paper_ids),
                                 source_pdf=m.get("source_pdf") or str(it.provenance.get("source_pdf") or ""),
                                 doi=m.get("doi"), title=m.get("title"), licence=m.get("licence"),
                                 held_out_by="list" if first in by_list else "share"))
            problems.append(Problem(file=it.image, stage="split", reason="held_out", item_id=it.item_id,
                                    detail=f"paper {m.get('source_pdf') or first} is in the held-out pool"))
        elif papers & other_papers:
            n_other += 1
            problems.append(Problem(file=it.image, stage="split", reason="held_out", item_id=it.item_id,
                                    detail=f"paper is in the pool of {config.holdout_build}"))
        else:
            rest.append(it)
    refs = [(p.item_id, p.phash) for p in pool] + other_hashes
    near = _near(rest, refs, config.dedup_max_distance)
    for it in rest:
        if it.item_id in near:
            ref, d = near[it.item_id]
            problems.append(Problem(file=it.image, stage="split", reason="near_holdout", item_id=it.item_id,
                                    detail=f"perceptual hash within {d} bits of pool image {ref}"))
    write_jsonl_atomic(pool_path(paths), sorted(pool, key=lambda p: p.item_id))
    counts = {"held_out": len(pool), "held_out_papers": len({p for x in pool for p in x.paper_ids} & held),
              "near_holdout": len(near), "held_out_elsewhere": n_other}
    return [it for it in rest if it.item_id not in near], problems, counts


def card_data(paths: StagePaths, dropped: list[Problem]) -> dict:
    """What the dataset card says about the pool: its size and papers, and what was kept out of training."""
    path = pool_path(paths)
    pool = read_jsonl(path, PoolItem) if path.exists() else []
    return {"pool_images": len(pool),
            "pool_papers": sorted({p.source_pdf or ",".join(p.paper_ids) for p in pool}),
            "pool_dois": sorted({p.doi for p in pool if p.doi}),
            "kept_out_by_paper": sum(p.reason == "held_out" for p in dropped),
            "kept_out_by_hash": sum(p.reason == "near_holdout" for p in dropped)}


def card_lines(data: dict) -> list[str]:
    if not (data.get("pool_images") or data.get("kept_out_by_paper") or data.get("kept_out_by_hash")):
        return []
    return ["## Held-out pool (for the expert benchmark; never trained on)", "",
            f"- pool: {data['pool_images']} image(s) of {len(data['pool_papers'])} paper(s)"
            + (f"; DOIs: {', '.join(data['pool_dois'])}" if data["pool_dois"] else ""),
            f"- kept out of train/val/test: {data['kept_out_by_paper']} image(s) of held-out papers, "
            f"{data['kept_out_by_hash']} near-duplicate(s) of pool images in other papers (perceptual hash)", ""]
