"""Stage 4, dedup: the same micrograph printed twice (in one paper or across papers) becomes one item.

Usage:
    python -m dataset_builders.build --from-stage dedup --to-stage dedup

Reads stages/panels/*.json and stages/filter.jsonl; writes stages/dedup.json, a list of
DuplicateGroup over the kept panels. Two panels are the same image when their 64-bit perceptual
hashes differ in at most config.dedup_max_distance bits; groups are the connected components of that
relation (union-find), so every kept panel is in exactly one group (singletons too). The
representative is the first member by (paper_id, panel_id); paper_ids lists every paper the image
appears in, which the split stage uses to keep reprints out of different splits.

Comparison is all-pairs, vectorised: XOR + popcount of uint64 hashes in cache-sized numpy tiles,
after collapsing identical hashes (50,000 panels = 1.25e9 pairs, about a second).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from dataset_builders.config import BuildConfig
from dataset_builders.records import DuplicateGroup, FilterDecision, PaperPanels, Problem, StageResult
from dataset_builders.stage_paths import StagePaths
from dataset_builders.union_find import UnionFind
from fracto_core.files import iter_json_list, iter_jsonl, read_model, write_json_list_atomic

STAGE = "dedup"
TILE_ROWS, TILE_COLS = 64, 4096  # pairs compared per numpy step: 256 Ki x 8 bytes = 2 MiB, cache-sized


def hash_array(hashes: Sequence[str]) -> np.ndarray:
    """Hex perceptual hashes (at most 64 bits each) as a uint64 array; ValueError names a bad one."""
    values = []
    for h in hashes:
        try:
            v = int(h, 16)
        except (TypeError, ValueError):
            raise ValueError(f"not a hex perceptual hash: {h!r}") from None
        if v >> 64:
            raise ValueError(f"perceptual hash longer than 64 bits: {h!r}")
        values.append(v)
    return np.array(values, dtype=np.uint64)


def _close_pairs(a: np.ndarray, b: np.ndarray, max_distance: int, triangle: bool,
                 progress: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(i, j, distance) arrays for pairs within max_distance, tile by tile (only j > i if triangle).

    Tiles of TILE_ROWS x TILE_COLS stay in the CPU cache and reuse two buffers; a tile without a close
    pair (nearly all of them) costs an XOR, a popcount and a min().
    """
    if a.size == 0 or b.size == 0:
        return
    xor = np.empty((TILE_ROWS, TILE_COLS), dtype=np.uint64)
    count = np.empty((TILE_ROWS, TILE_COLS), dtype=np.uint8)
    for r0 in tqdm(range(0, a.size, TILE_ROWS), desc="dedup", unit="tile row", disable=not progress):
        rows = a[r0:r0 + TILE_ROWS, None]
        # triangle: the square on the diagonal alone first (a row against itself is always within reach, so
        # the wide tile holding it was searched whole every time: ~half of this function's time), then the rest
        starts = [(r0, r0 + TILE_ROWS), *((c0, c0 + TILE_COLS) for c0 in range(r0 + TILE_ROWS, b.size, TILE_COLS))] \
            if triangle else [(c0, c0 + TILE_COLS) for c0 in range(0, b.size, TILE_COLS)]
        for c0, c1 in starts:
            if c0 >= b.size:
                break
            cols = b[None, c0:c1]
            shape = (rows.shape[0], cols.shape[1])
            dist = np.bitwise_count(np.bitwise_xor(rows, cols, out=xor[:shape[0], :shape[1]]),
                                    out=count[:shape[0], :shape[1]])
            if dist.min() > max_distance:
                continue
            i, j = np.nonzero(dist <= max_distance)
            d = dist[i, j].astype(np.int64)
            i, j = i + r0, j + c0
            if triangle:
                upper = j > i
                i, j, d = i[upper], j[upper], d[upper]
            yield i, j, d


def near_duplicates(hashes_a: Sequence[str], hashes_b: Sequence[str], max_distance: int
                    ) -> list[tuple[int, int, int]]:
    """Every (index in a, index in b, Hamming distance) with distance <= max_distance, sorted.

    Usage: ``{i for i, _, _ in near_duplicates(item_hashes, benchmark_hashes, 6)}`` are the items
    that match some benchmark image.
    """
    a, b = hash_array(hashes_a), hash_array(hashes_b)
    out: list[tuple[int, int, int]] = []
    for i, j, d in _close_pairs(a, b, max_distance, triangle=False):
        out.extend(zip(i.tolist(), j.tolist(), d.tolist()))
    out.sort()
    return out


def pairs_within(hashes: np.ndarray, max_distance: int) -> list[tuple[int, int]]:
    """Every index pair (i, j), i < j, of a uint64 hash array within max_distance bits, sorted.

    Tile by tile (_close_pairs): memory stays at two tile buffers whatever the number of hashes (a row
    block against all hashes at once held 1024 x n uint64: 92 MB at 11,200 items).
    """
    out: list[tuple[int, int]] = []
    for i, j, _ in _close_pairs(hashes, hashes, max_distance, triangle=True):
        out.extend(zip(i.tolist(), j.tolist()))
    out.sort()
    return out


def group_panels(panels: Sequence[tuple[str, str, str]], max_distance: int, progress: bool = False
                 ) -> list[DuplicateGroup]:
    """Duplicate groups of (paper_id, panel_id, phash) triples; groups ordered by representative."""
    return list(iter_group_panels(panels, max_distance, progress))


def iter_group_panels(panels: Sequence[tuple[str, str, str]], max_distance: int, progress: bool = False
                      ) -> Iterator[DuplicateGroup]:
    """group_panels' groups made one at a time as they are asked for (the stage writes each and lets it go:
    14,000 group models held at once were ~9 MiB of the main process at 2,000 papers)."""
    ordered = sorted(panels, key=lambda p: (p[0], p[1]))
    hashes = hash_array([p[2] for p in ordered])
    uniques, inverse = np.unique(hashes, return_inverse=True)  # identical hashes: one comparison row
    uf = UnionFind(len(uniques))
    for i, j, _ in _close_pairs(uniques, uniques, max_distance, triangle=True, progress=progress):
        for a, b in zip(i.tolist(), j.tolist()):
            uf.union(a, b)
    members: dict[int, list[int]] = {}
    for k, u in enumerate(inverse.ravel().tolist()):
        members.setdefault(uf.find(u), []).append(k)  # k ascends: members stay in (paper_id, panel_id) order
    for ks in sorted(members.values(), key=lambda ks: ks[0]):
        rep = ordered[ks[0]][1]
        yield DuplicateGroup(group_id=rep, representative=rep, members=[ordered[k][1] for k in ks],
                             paper_ids=sorted({ordered[k][0] for k in ks}))


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Group the kept panels by perceptual hash; write stages/dedup.json."""
    if not paths.filter.exists():
        raise FileNotFoundError(f"{paths.filter} is missing: run the filter stage first")
    keep = {d.panel_id for d in iter_jsonl(paths.filter, FilterDecision) if d.keep}  # not a list of all decisions
    result = StageResult(stage=STAGE)
    triples: list[tuple[str, str, str]] = []
    found: set[str] = set()
    for f in sorted(paths.panels.glob("*.json")):
        try:
            panels = read_model(f, PaperPanels).panels
        except Exception as exc:  # noqa: BLE001
            result.problems.append(Problem(file=paths.rel(f), stage=STAGE, reason="bad_panels_record",
                                           detail=f"{type(exc).__name__}: {exc}", severity="failed"))
            continue
        for p in panels:
            if p.panel_id not in keep:
                continue
            found.add(p.panel_id)
            try:
                hash_array([p.phash])
            except ValueError as exc:
                result.problems.append(Problem(file=p.source_pdf, stage=STAGE, reason="bad_phash",
                                               paper_id=p.paper_id, item_id=p.panel_id, detail=str(exc)))
                continue
            triples.append((p.paper_id, p.panel_id, p.phash))
    for missing in sorted(keep - found):
        result.problems.append(Problem(file=paths.rel(paths.filter), stage=STAGE, reason="unknown_panel",
                                       item_id=missing, detail="kept by the filter but absent from stages/panels"))
    cross_paper = 0

    def dumped(groups: Iterator[DuplicateGroup]) -> Iterator[dict]:
        nonlocal cross_paper
        for g in groups:
            cross_paper += len(g.paper_ids) > 1
            yield g.model_dump()

    # write_json_atomic's text, streamed: a group is made, written and let go
    n_groups = write_json_list_atomic(paths.dedup, dumped(iter_group_panels(triples, config.dedup_max_distance,
                                                                           progress=progress)))
    result.counts = {
        "kept_panels": len(triples),
        "groups": n_groups,
        "duplicates_merged": len(triples) - n_groups,
        "cross_paper_groups": cross_paper,
    }
    return result


def iter_groups(paths: StagePaths) -> Iterator[DuplicateGroup]:
    """dedup.json's groups one at a time, in the file's order (by representative); none when the stage has not
    run. The one reader of the file (label, items, export's texts, the card): the list of parsed dicts is
    never held."""
    if paths.dedup.exists():
        yield from map(DuplicateGroup.model_validate, iter_json_list(paths.dedup))
