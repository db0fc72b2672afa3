"""Dedup: reprinted micrographs (re-encoded, rescaled) group together within and across papers."""

from __future__ import annotations

import io
import json
import random
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dataset_builders import dedup, panels
from dataset_builders import filter as filter_stage
from dataset_builders.config import BuildConfig
from dataset_builders.perceptual_hash import hamming
from dataset_builders.records import FigurePart, FigureRecord, PaperRecord
from dataset_builders.stage_paths import StagePaths

P1, P2 = "1111111111111111", "2222222222222222"


def texture(seed: int, w: int = 480, h: int = 360) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, (h // 8 + 2, w // 8 + 2))
    return Image.fromarray(np.uint8(np.clip(coarse * 40 + 115, 0, 230))).resize((w, h), Image.BICUBIC)


def reprint(img: Image.Image) -> Image.Image:
    """The same micrograph as another journal prints it: 80 % size, JPEG quality 70."""
    buf = io.BytesIO()
    img.resize((img.width * 4 // 5, img.height * 4 // 5), Image.BILINEAR).save(buf, "JPEG", quality=70)
    return Image.open(io.BytesIO(buf.getvalue()))


def plot() -> Image.Image:
    img = Image.new("L", (400, 300), 255)
    ImageDraw.Draw(img).line([(40, 20), (40, 260), (380, 260)], fill=0, width=2)
    return img


def write_paper(paths: StagePaths, paper_id: str, images: list[tuple[Image.Image, str]]) -> None:
    figures = []
    for k, (img, caption) in enumerate(images, 1):
        fid = f"{paper_id}-p1-f{k}"
        file = paths.mine / paper_id / f"{fid}.jpg"
        file.parent.mkdir(parents=True, exist_ok=True)
        img.save(file, "JPEG", quality=95)
        part = FigurePart(image=paths.rel(file), width=img.width, height=img.height, bbox=(0, 0, 300, 200),
                          origin="embedded", source_format="jpeg")
        figures.append(FigureRecord(figure_id=fid, paper_id=paper_id, page=1, bbox=(0, 0, 300, 200),
                                    kind="raster", number=k, caption=caption, parts=[part]))
    record = PaperRecord(paper_id=paper_id, source_pdf=f"{paper_id}.pdf", n_pages=1, figures=figures, excerpts=[])
    (paths.mine / paper_id / "paper.json").write_text(record.model_dump_json(), encoding="utf-8")


def build(tmp_path, workers: int = 1) -> tuple[StagePaths, dict]:
    paths = StagePaths(tmp_path)
    a, b, c = texture(1), texture(2), texture(3)
    write_paper(paths, P1, [(a, "Fig. 1. Fractograph showing dimples."),
                            (b, "Fig. 2. Fracture surface with cleavage facets."),
                            (b, "Fig. 3. Fracture surface, the same region again."),
                            (plot(), "Fig. 4. Stress-strain curve.")])
    write_paper(paths, P2, [(reprint(a), "Fig. 1. Fractograph of the reprinted specimen with dimples."),
                            (c, "Fig. 2. Fractograph showing striations."),
                            (plot(), "Fig. 3. Stress-strain curve.")])
    config = BuildConfig(out=tmp_path, workers=workers)
    panels.run(paths, config, progress=False)
    filter_stage.run(paths, config, progress=False)
    result = dedup.run(paths, config, progress=False)
    return paths, result


def test_reprinted_image_groups_across_papers_and_different_textures_do_not(tmp_path):
    paths, result = build(tmp_path)
    groups = list(dedup.iter_groups(paths))
    by_rep = {g.representative: g for g in groups}
    assert set(by_rep) == {f"{P1}-p1-f1-whole", f"{P1}-p1-f2-whole", f"{P2}-p1-f2-whole"}
    cross = by_rep[f"{P1}-p1-f1-whole"]
    assert cross.members == [f"{P1}-p1-f1-whole", f"{P2}-p1-f1-whole"]
    assert cross.paper_ids == [P1, P2] and cross.group_id == cross.representative
    within = by_rep[f"{P1}-p1-f2-whole"]
    assert within.members == [f"{P1}-p1-f2-whole", f"{P1}-p1-f3-whole"] and within.paper_ids == [P1]
    assert by_rep[f"{P2}-p1-f2-whole"].members == [f"{P2}-p1-f2-whole"]
    # the two identical plots were dropped by the filter, so they are in no group at all
    members = [m for g in groups for m in g.members]
    assert len(members) == len(set(members)) == 5
    assert not any(m.endswith(("f4-whole", f"{P2}-p1-f3-whole")) for m in members)
    assert result.counts == {"kept_panels": 5, "groups": 3, "duplicates_merged": 2, "cross_paper_groups": 1}


def test_stage_output_is_deterministic(tmp_path):
    paths_a, _ = build(tmp_path / "a", workers=1)
    paths_b, _ = build(tmp_path / "b", workers=2)
    assert paths_a.dedup.read_bytes() == paths_b.dedup.read_bytes()
    data = json.loads(paths_a.dedup.read_text())
    assert isinstance(data, list) and set(data[0]) == {"group_id", "representative", "members", "paper_ids"}


def test_missing_filter_file_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="filter stage"):
        dedup.run(StagePaths(tmp_path), BuildConfig(out=tmp_path), progress=False)


# --- the grouping on hashes alone ------------------------------------------------------------------------

def _flip(h: int, bits: list[int]) -> int:
    for b in bits:
        h ^= 1 << b
    return h


def _hex(v: int) -> str:
    return f"{v:016x}"


def brute_force_groups(triples, max_distance):
    ordered = sorted(triples)
    parent = list(range(len(ordered)))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i
    for i in range(len(ordered)):
        for j in range(i + 1, len(ordered)):
            if hamming(ordered[i][2], ordered[j][2]) <= max_distance:
                ri, rj = find(i), find(j)
                parent[max(ri, rj)] = min(ri, rj)
    groups = {}
    for i, t in enumerate(ordered):
        groups.setdefault(find(i), []).append(t[1])
    return sorted(groups.values())


def test_group_panels_matches_brute_force_and_ignores_input_order():
    rng = random.Random(7)
    base = [rng.getrandbits(64) for _ in range(60)]
    triples = []
    for k, h in enumerate(base):
        triples.append((f"paper{k % 5}", f"panel{k:03d}", _hex(h)))
        if k % 4 == 0:  # a reprint a few bits away, in another paper
            triples.append((f"paper{(k + 1) % 5}", f"panel{k:03d}r", _hex(_flip(h, rng.sample(range(64), k % 7)))))
    triples.append(("paper9", "zero", _hex(0)))
    triples.append(("paper9", "top-bit", _hex(1 << 63)))  # uint64 above the signed range
    groups = dedup.group_panels(triples, 6)
    assert sorted(g.members for g in groups) == brute_force_groups(triples, 6)
    assert sum(len(g.members) for g in groups) == len(triples)
    shuffled = triples[:]
    random.Random(1).shuffle(shuffled)
    assert dedup.group_panels(shuffled, 6) == groups
    assert any(len(g.paper_ids) == 2 for g in groups)


def test_chains_are_one_group_and_threshold_is_inclusive():
    a = 0
    b = _flip(a, [0, 1, 2, 3])  # 4 from a
    c = _flip(b, [10, 11, 12, 13])  # 4 from b, 8 from a
    d = _flip(a, list(range(30, 37)))  # 7 from a: outside
    triples = [("p", "a", _hex(a)), ("p", "b", _hex(b)), ("q", "c", _hex(c)), ("q", "d", _hex(d))]
    groups = dedup.group_panels(triples, 4)
    assert [g.members for g in groups] == [["a", "b", "c"], ["d"]]
    assert groups[0].paper_ids == ["p", "q"]
    assert [g.members for g in dedup.group_panels(triples, 3)] == [["a"], ["b"], ["c"], ["d"]]


def test_near_duplicates_helper():
    a = [_hex(0), _hex(0xFF), _hex(1 << 63)]
    b = [_hex(1), _hex(0xFFFF), _hex((1 << 63) | 3)]
    assert dedup.near_duplicates(a, b, 2) == [(0, 0, 1), (2, 0, 2), (2, 2, 2)]
    assert dedup.near_duplicates(a, b, 8) == [(0, 0, 1), (0, 2, 3), (1, 0, 7), (1, 1, 8), (1, 2, 7),
                                              (2, 0, 2), (2, 2, 2)]
    assert dedup.near_duplicates([], b, 6) == [] and dedup.near_duplicates(a, [], 6) == []
    with pytest.raises(ValueError, match="not a hex"):
        dedup.near_duplicates(["xyz"], b, 6)


def test_fifty_thousand_hashes_group_in_seconds():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**63, 50_000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 50_000, dtype=np.uint64)
    triples = [(f"p{k % 997}", f"x{k:05d}", f"{int(v):016x}") for k, v in enumerate(values)]
    triples.append(("pz", "dup", triples[123][2]))
    start = time.perf_counter()
    groups = dedup.group_panels(triples, 6)
    elapsed = time.perf_counter() - start
    assert len(groups) == 50_000  # random 64-bit hashes are ~32 bits apart: only the planted copy merges
    assert next(g for g in groups if "dup" in g.members).members == ["x00123", "dup"]
    assert elapsed < 30, f"grouping 50k hashes took {elapsed:.1f} s"


# --- integration: the sample corpus's reprinted figures ---------------------------------------------------

def test_sample_corpus_reprints_group_across_papers(tmp_path):
    """Mine 6 generated papers; every reprint (identical, re-encoded, rescaled) joins its original's group."""
    from pathlib import Path

    from dataset_builders import mine, sample_corpus
    from dataset_builders.records import PaperPanels
    from fracto_core.files import read_model

    truth = sample_corpus.generate_corpus(tmp_path / "corpus", n_papers=6, seed=0)
    config = BuildConfig(out=tmp_path / "build", papers=tmp_path / "corpus" / "papers", workers=1)
    paths = StagePaths(config.out)
    for stage in (mine, panels, filter_stage, dedup):
        assert stage.run(paths, config, progress=False).problems == []
    panel_of: dict[str, str] = {}  # "<stem>:fig<N>[:<letter>]" -> panel id
    for tp in truth.papers:
        mined = next(read_model(f, PaperRecord) for f in paths.mine.glob("*/paper.json")
                     if read_model(f, PaperRecord).source_pdf == Path(tp.file).name)
        got = read_model(paths.panels / f"{mined.paper_id}.json", PaperPanels).panels
        for tf in tp.figures:
            fid = next(f.figure_id for f in mined.figures if f.number == str(tf.number))
            for q in tf.panels:
                key = f"{Path(tp.file).stem}:fig{tf.number}" + (f":{q.letter}" if q.letter else "")
                panel_of[key] = next(p.panel_id for p in got if p.figure_id == fid and p.letter == q.letter)
    pairs = []
    for tp in truth.papers:
        for tf in tp.figures:
            for q in tf.panels:
                original = q.duplicate_of or (tf.duplicate_of and tf.duplicate_of + (f":{q.letter}" if q.letter else ""))
                if original and tf.is_fracture:
                    key = f"{Path(tp.file).stem}:fig{tf.number}" + (f":{q.letter}" if q.letter else "")
                    pairs.append((panel_of[key], panel_of[original], tf.duplicate_mode))
    group_of = {m: g.group_id for g in dedup.iter_groups(paths) for m in g.members}
    assert {mode for _, _, mode in pairs} == {"identical", "reencoded", "rescaled"}
    for copy, original, mode in pairs:
        assert group_of[copy] == group_of[original], mode
    merged = sum(len(g.members) - 1 for g in dedup.iter_groups(paths))
    assert merged == len(pairs)  # nothing else was merged
