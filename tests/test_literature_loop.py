"""The literature loop on the builder side: the fetch manifest's DOI and licence reach every record, item,
meta line and the dataset card; stable splits keep old papers where they were when papers are added; an
incremental build equals, file for file, a fresh build whose splits were fixed the same way."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pymupdf
import pytest

from dataset_builders import split as splits
from dataset_builders.build import build
from dataset_builders.config import BuildConfig
from dataset_builders.fetch.manifest import MANIFEST_NAME, ManifestRecord, read_manifest
from dataset_builders.fetch.run import FetchSettings, run_fetch
from dataset_builders.paper_splits import PINS_NAME, PaperSplit, draw_settings
from dataset_builders.records import Item, PaperPanels, PaperRecord, Problem, SplitAssignment
from dataset_builders.sample_corpus import generate_corpus
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, read_model, write_jsonl_atomic
from support.literature_server import FileSpec, LiteratureServer, work

LICENCES = ["cc-by", "cc-by-nc", "cc0", "cc-by-sa", "cc-by"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("loop_corpus")
    generate_corpus(dest, n_papers=8, seed=3)
    return dest


def _config(papers: Path, out: Path, corpus: Path) -> BuildConfig:
    return BuildConfig(papers=papers, manual=corpus / "manual", out=out, workers=1, seed=3)


def test_manifest_licences_reach_records_items_meta_and_card(corpus, tmp_path):
    pdfs_in = sorted((corpus / "papers").glob("*.pdf"))[:5]
    folder = tmp_path / "fetched"
    with LiteratureServer() as host:
        host.files = {p.name: FileSpec(p.read_bytes()) for p in pdfs_in}
        works = [work(f"W{i}", f"10.9999/loop.{i}", lic, f"{host.base_url}/pdf/{p.name}", title=f"Fetched paper {i}")
                 for i, (p, lic) in enumerate(zip(pdfs_in, LICENCES))]
        with LiteratureServer(works=works) as api:
            summary = run_fetch(FetchSettings(query="fractography", out=folder, sources=["openalex"],
                                              openalex_url=api.base_url, licences=["cc-by", "cc-by-nc", "cc0"],
                                              host_interval=0, api_interval=0, backoff=0.01), progress=False)
    assert summary.decisions == {"downloaded": 4, "skipped:licence_not_allowed": 1}
    # a PDF put there by hand, with its own licence statement and no manifest line
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "This article is licensed under CC BY-SA 4.0.", fontsize=11)
    doc.save(folder / "by_hand.pdf")
    doc.close()
    out = tmp_path / "out"
    build(_config(folder, out, corpus), progress=False)

    manifest = {r.pdf: r for r in read_manifest(folder / MANIFEST_NAME).values() if r.status == "downloaded"}
    records = {read_model(f, PaperRecord).source_pdf: read_model(f, PaperRecord)
               for f in (out / "stages" / "mine").glob("*/paper.json")}
    assert set(records) == {*manifest, "by_hand.pdf"}
    for name, m in manifest.items():
        r = records[name]
        assert (r.doi, r.licence, r.licence_source, r.source_url, r.authors, r.year, r.venue, r.title) == (
            m.doi, m.licence, "manifest", m.source_url, m.authors, m.year, m.venue, m.title)
        panels = read_model(out / "stages" / "panels" / f"{r.paper_id}.json", PaperPanels)
        assert (panels.doi, panels.licence, panels.source_url) == (r.doi, r.licence, r.source_url)
    hand = records["by_hand.pdf"]
    assert (hand.licence, hand.licence_source, hand.licence_url) == (
        "cc-by-sa", "pdf_text", "https://creativecommons.org/licenses/by-sa/4.0/")
    assert hand.doi is None and hand.source_url is None

    by_paper = {r.paper_id: r for r in records.values()}
    items = read_jsonl(out / "stages" / "items.jsonl", Item)
    mined = [it for it in items if it.label_origin != "manual"]
    assert mined
    for it in items:
        if it.label_origin == "manual":
            assert (it.provenance["licence"], it.provenance["doi"]) == ("unknown", None)
            continue
        paper = by_paper[next(p for p in it.paper_ids if p in by_paper and
                              it.provenance["source_pdf"] == by_paper[p].source_pdf)]
        assert (it.provenance["doi"], it.provenance["licence"], it.provenance["source_url"]) == (
            paper.doi, paper.licence, paper.source_url)
    meta_lines = [json.loads(line) for split in ("train", "val", "test")
                  for line in (out / "dataset" / f"fracto_{split}_meta.jsonl").read_text().splitlines()]
    assert meta_lines and all({"doi", "licence", "source_url"} <= set(m["provenance"]) for m in meta_lines)
    assert {m["provenance"]["licence"] for m in meta_lines} <= {"cc-by", "cc-by-nc", "cc0", "unknown"}
    assert any(m["provenance"]["doi"] and m["provenance"]["doi"].startswith("10.9999/loop.") for m in meta_lines)

    card = json.loads((out / "dataset" / "dataset_card.json").read_text())
    table = card["licences"]
    sources = [x for x in card["sources"] if not x["manual"]]
    assert sources and all(x["licence"] == by_paper[x["source"]].licence for x in sources)
    assert {k: v["papers"] for k, v in table.items() if v["papers"]} == dict(Counter(x["licence"] for x in sources))
    assert sum(v["items"] for v in table.values()) == sum(v["items"] for v in card["splits"].values())
    for lic, row in table.items():
        assert row["items"] == sum(row[s] for s in ("train", "val", "test"))
        assert row["items"] == sum(1 for m in meta_lines if m["augmentation"] is None  # originals only
                                   and (m["provenance"].get("licence") or "unknown") == lic)
    md = (out / "dataset" / "dataset_card.md").read_text()
    assert "## Licences" in md and "| licence | papers | items | train | val | test |" in md
    assert "10.9999/loop." in md


def test_manifest_written_after_a_build_updates_the_next_build(corpus, tmp_path):
    papers = tmp_path / "papers"
    papers.mkdir()
    pdf = sorted((corpus / "papers").glob("*.pdf"))[0]
    shutil.copy(pdf, papers / pdf.name)
    out = tmp_path / "out"
    build(_config(papers, out, corpus), progress=False)
    line = ManifestRecord(key="openalex:W77", source="openalex", doi="10.9999/late", licence="cc-by-sa",
                          licence_url="https://creativecommons.org/licenses/by-sa/", source_url="https://x.org/a.pdf",
                          pdf=pdf.name, sha256=hashlib.sha256(pdf.read_bytes()).hexdigest(), status="downloaded",
                          fetched_at="2026-12-01T00:00:00+00:00")
    (papers / MANIFEST_NAME).write_text(line.model_dump_json() + "\n")
    results = build(_config(papers, out, corpus), progress=False)
    assert results["mine"].counts["resumed"] == 1 and results["mine"].counts["metadata_updated"] == 1
    (paper_json,) = (out / "stages" / "mine").glob("*/paper.json")
    record = read_model(paper_json, PaperRecord)
    panels = read_model(out / "stages" / "panels" / f"{record.paper_id}.json", PaperPanels)
    assert (record.doi, record.licence, record.licence_source) == ("10.9999/late", "cc-by-sa", "manifest")
    assert (panels.doi, panels.licence, panels.source_url) == ("10.9999/late", "cc-by-sa", "https://x.org/a.pdf")
    mined = [it for it in read_jsonl(out / "stages" / "items.jsonl", Item) if it.label_origin != "manual"]
    assert mined and all(it.provenance["licence"] == "cc-by-sa" for it in mined)
    # the same manifest again: the kept summary (stages/mine_resumed.tsv) says the record has it; a changed line
    results = build(_config(papers, out, corpus), progress=False)
    assert results["mine"].counts["resumed"] == 1 and "metadata_updated" not in results["mine"].counts
    (papers / MANIFEST_NAME).write_text(line.model_copy(update={"doi": "10.9999/later"}).model_dump_json() + "\n")
    results = build(_config(papers, out, corpus), progress=False)
    assert results["mine"].counts["metadata_updated"] == 1 and read_model(paper_json, PaperRecord).doi == "10.9999/later"


def _splits_by_paper(out: Path) -> dict[str, set[str]]:
    items = {it.item_id: it for it in read_jsonl(out / "stages" / "items.jsonl", Item)}
    found: dict[str, set[str]] = {}
    for a in read_jsonl(out / "stages" / "splits.jsonl", SplitAssignment):
        for p in items[a.item_id].paper_ids:
            found.setdefault(p, set()).add(a.split)
    return found


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_incremental_update_keeps_old_papers_and_equals_a_fixed_build(corpus, tmp_path):
    all_pdfs = sorted((corpus / "papers").glob("*.pdf"))
    papers = tmp_path / "papers"
    papers.mkdir()
    for p in all_pdfs[:5]:
        shutil.copy(p, papers / p.name)
    out = tmp_path / "out"
    build(_config(papers, out, corpus), progress=False)
    before = _splits_by_paper(out)
    assert len({s for v in before.values() for s in v}) >= 2  # the first build uses more than one split
    # (without the pins, one of these 5 papers moves from train to val when the 3 are added: checked 2026-12)

    for p in all_pdfs[5:]:
        shutil.copy(p, papers / p.name)
    results = build(_config(papers, out, corpus), progress=False)
    assert (results["mine"].counts["resumed"], results["mine"].counts["mined"]) == (5, 3)
    assert (results["panels"].counts["papers_resumed"], results["panels"].counts["papers"]) == (5, 3)
    # the old papers' filter decisions and caption-rule labels are reused (stage_cache), the new ones' made
    assert results["filter"].counts["papers_resumed"] == 5
    reused, labelled = results["label"].counts["reused"], results["label"].counts["labelled"]
    assert 0 < reused < labelled
    after = _splits_by_paper(out)
    for paper, split_set in before.items():
        assert after[paper] == split_set, f"{paper} moved from {split_set} to {after[paper]}"
    assert all(len(v) == 1 for v in after.values())  # no paper straddles splits
    pins = {p.paper: p for p in read_jsonl(out / PINS_NAME, PaperSplit)}
    new = {p for p, pin in pins.items() if pin.update == 2}
    assert new and new == set(after) - set(before)
    card = json.loads((out / "dataset" / "dataset_card.json").read_text())
    assert card["updates"]["latest"] == 2
    assert {a["source"] for a in card["updates"]["added_by_latest"]} == new
    assert "Added by build 2" in (out / "dataset" / "dataset_card.md").read_text()

    fixed = tmp_path / "fixed"
    fixed.mkdir()
    shutil.copy(out / PINS_NAME, fixed / PINS_NAME)  # the same split decisions, then one build of everything
    build(_config(papers, fixed, corpus), progress=False)
    incremental, reference = _files(out / "dataset"), _files(fixed / "dataset")
    assert sorted(incremental) == sorted(reference)
    differing = [name for name in incremental if incremental[name] != reference[name]]
    assert differing == []
    assert (fixed / PINS_NAME).read_bytes() == (out / PINS_NAME).read_bytes()
    for name in ("filter.jsonl", "dedup.json", "labels.jsonl", "items.jsonl", "splits.jsonl"):
        assert (out / "stages" / name).read_bytes() == (fixed / "stages" / name).read_bytes(), name


def _item(item_id: str, papers: list[str], phash: str, features=("equiaxed dimples",)) -> Item:
    return Item(item_id=item_id, image=f"stages/panels/{item_id}.png", width=64, height=48, phash=phash,
                paper_ids=papers, features=list(features), label_origin="caption_rules")


def _pin(config: BuildConfig, paper: str, split: str) -> PaperSplit:
    return PaperSplit(paper=paper, split=split, update=1, drawn=draw_settings(config))


H_A, H_B, H_C = "0f0f0f0f0f0f0f0f", "ff00ff00ff00ff00", "123456789abcdef0"


def _flip(h: str) -> str:  # one bit away: a near-duplicate
    return f"{int(h, 16) ^ 1:016x}"


def _run_split(tmp_path: Path, pins: dict[str, str], items: list[Item], seed: int = 1, pin_seed: int = 1):
    """Write the pins ({paper: split}, drawn with pin_seed) and the items, run the split stage with seed:
    (paths, result, {item id: split}, {paper: PaperSplit} after the run)."""
    paths = StagePaths(tmp_path)
    paths.stages.mkdir(parents=True, exist_ok=True)
    drawn = BuildConfig(out=tmp_path, seed=pin_seed)
    write_jsonl_atomic(paths.out / PINS_NAME, [_pin(drawn, paper, split) for paper, split in pins.items()])
    write_jsonl_atomic(paths.items, items)
    result = splits.run(paths, BuildConfig(out=tmp_path, seed=seed), progress=False)
    got = {a.item_id: a.split for a in read_jsonl(paths.splits, SplitAssignment)}
    return paths, result, got, {p.paper: p for p in read_jsonl(paths.out / PINS_NAME, PaperSplit)}


def test_new_paper_joining_an_old_group_follows_it(tmp_path):
    _, result, got, pins = _run_split(tmp_path, {"paperA": "test", "paperB": "train"}, [
        _item("a1", ["paperA"], H_A), _item("b1", ["paperB"], H_B),
        _item("d1", ["paperD"], _flip(H_A)), _item("d2", ["paperD"], H_C)])
    assert got == {"a1": "test", "b1": "train", "d1": "test", "d2": "test"}  # paperD follows paperA, whole
    assert result.counts["pinned_groups"] == 2
    assert (pins["paperD"].split, pins["paperD"].update) == ("test", 2)


def test_new_paper_bridging_two_splits_is_dropped_not_straddled(tmp_path):
    paths, _, got, pins = _run_split(tmp_path, {"paperA": "train", "paperB": "test"}, [
        _item("a1", ["paperA"], H_A), _item("b1", ["paperB"], H_B),
        _item("e1", ["paperE"], _flip(H_A)), _item("e2", ["paperE"], _flip(H_B))])
    assert got == {"a1": "train", "b1": "test"}
    dropped = read_jsonl(splits.dropped_path(paths), Problem)
    assert sorted((p.item_id, p.reason) for p in dropped) == [("e1", "split_conflict"), ("e2", "split_conflict")]
    assert "paperE" not in pins


def test_other_seed_redraws_every_split(tmp_path):
    _, _, got, _ = _run_split(tmp_path, {"paperA": "test"}, [_item("a1", ["paperA"], H_A)])
    assert got == {"a1": "test"}  # pinned
    _, result, got, pins = _run_split(tmp_path, {"paperA": "test"}, [_item("a1", ["paperA"], H_A)], seed=2)
    assert [p.reason for p in result.problems] == ["splits_redrawn"]
    assert got == {"a1": "train"}  # a lone group is drawn into train
    assert pins["paperA"].drawn == "seed=2 val_ratio=0.1 test_ratio=0.1"


# what each real PDF states about its own licence (shared/real_literature annotations.json, licence_note):
# three state a CC licence (page 1; page 2 behind IOP's cover sheet; Nature's "Open Access This article is
# licensed under ..." on the article's last page); the rest state none (copyright notices, author copies,
# repository-licensed files whose PDF says nothing), and must stay "unknown"
REAL_LICENCES = {
    "hc_djukic2016_steel_hydrogen_charpy_fractography.pdf": ("cc-by-nc-nd", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
    "hc_iop2019_dp_cp1000_hotforming_zn_microcracks.pdf": ("cc-by", "https://creativecommons.org/licenses/by/3.0/"),
    "hc_sun2021_natmat_hydrogen_crack_arrest_steel.pdf": ("cc-by", "https://creativecommons.org/licenses/by/4.0/"),
}


REAL_PDFS = next((c for c in (Path(__file__).resolve().parents[2] / "shared" / "real_literature" / "pdfs",
                              Path("/work/shared/real_literature/pdfs")) if c.is_dir()), None)


@pytest.mark.skipif(REAL_PDFS is None, reason="shared/real_literature not present")
def test_real_pdfs_own_licence_statements(tmp_path):
    real = REAL_PDFS
    from dataset_builders import mine

    config = BuildConfig(papers=real, out=tmp_path, workers=2)
    mine.run(StagePaths(tmp_path), config, progress=False)
    got = {}
    for f in (tmp_path / "stages" / "mine").glob("*/paper.json"):
        record = read_model(f, PaperRecord)
        got[record.source_pdf] = (record.licence, record.licence_url, record.licence_source)
    assert len(got) == len(list(real.glob("*.pdf"))) >= 11
    for name, found in sorted(got.items()):
        licence, url = REAL_LICENCES.get(name, ("unknown", None))
        assert found == (licence, url, "pdf_text" if licence != "unknown" else "unknown"), name


def test_pool_and_card_read_a_papers_metadata_with_one_function(tmp_path):
    from dataset_builders import holdout
    from dataset_builders.sources import paper_meta
    from fracto_core.files import write_model_atomic

    paths = StagePaths(tmp_path)
    pid = "ab" * 8
    write_model_atomic(paths.panels / f"{pid}.json", PaperPanels(
        paper_id=pid, source_pdf="sub/x.pdf", panels=[], doi="10.1/x", title="A title", licence="cc-by",
        licence_url="https://creativecommons.org/licenses/by/4.0/", source_url="https://example.org/x.pdf"))
    expected = {"title": "A title", "doi": "10.1/x", "source_pdf": "sub/x.pdf", "licence": "cc-by",
                "licence_url": "https://creativecommons.org/licenses/by/4.0/", "source_url": "https://example.org/x.pdf"}
    assert paper_meta(paths, pid) == expected and holdout.paper_metadata(paths) == {pid: expected}
    # the card's reading: a missing or unreadable file gives nothing; the pool's: an error naming the file
    assert paper_meta(paths, "cd" * 8, missing_ok=True) == {}
    with pytest.raises(OSError):
        paper_meta(paths, "cd" * 8)
    (paths.panels / f"{'ef' * 8}.json").write_text("{torn", encoding="utf-8")
    assert paper_meta(paths, "ef" * 8, missing_ok=True) == {}
    with pytest.raises(ValueError, match="ef" * 8):
        holdout.paper_metadata(paths)
    (paths.panels / f"{'ef' * 8}.json").write_text("[]", encoding="utf-8")  # JSON, but not a panels record
    assert paper_meta(paths, "ef" * 8, missing_ok=True) == {}
    with pytest.raises(ValueError, match="not an object"):
        paper_meta(paths, "ef" * 8)


def test_a_run_killed_between_the_two_source_writes_is_brought_up_to_date_by_the_next(corpus, tmp_path, monkeypatch):
    """refresh_source writes two files; a kill after the first must not leave them disagreeing for good."""
    from dataset_builders import sources

    papers = tmp_path / "papers"
    papers.mkdir()
    shutil.copy(sorted((corpus / "papers").glob("*.pdf"))[0], papers)
    out = tmp_path / "out"
    build(_config(papers, out, corpus), progress=False)
    paths = StagePaths(out)
    (record_file,) = paths.mine.glob("*/paper.json")
    panels_file = paths.panels / f"{record_file.parent.name}.json"
    assert read_model(panels_file, PaperPanels).licence == "unknown"
    source = sources.SourceMeta(licence="cc-by", licence_url="https://creativecommons.org/licenses/by/4.0/",
                                doi="10.9999/kill.1")

    real_write, calls = sources.write_model_atomic, []

    def killed_at_the_second_write(path, model, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        real_write(path, model, **kw)

    monkeypatch.setattr(sources, "write_model_atomic", killed_at_the_second_write)
    with pytest.raises(KeyboardInterrupt):
        sources.refresh_source(paths, read_model(record_file, PaperRecord), source)
    monkeypatch.setattr(sources, "write_model_atomic", real_write)
    sources.refresh_source(paths, read_model(record_file, PaperRecord), source)  # the next run's resume
    assert read_model(record_file, PaperRecord).licence == "cc-by"
    assert (read_model(panels_file, PaperPanels).licence, read_model(panels_file, PaperPanels).doi) == (
        "cc-by", "10.9999/kill.1")
