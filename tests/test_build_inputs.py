"""A papers folder with no PDF under it (a typo, an unmounted share, a fetch that downloaded nothing) stops the
build before anything changes; with --manual it builds from the manual images alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataset_builders import build
from dataset_builders.build import first_pdf


def _earlier_build(out: Path) -> list[Path]:
    """Files an earlier build left (stand-ins: the check must run before --fresh or any stage touches them)."""
    kept = [out / "stages" / "mine" / "0123456789abcdef" / "paper.json", out / "dataset" / "fracto_train.json"]
    for f in kept:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}\n")
    return kept


@pytest.mark.parametrize("content", ["nothing", "not_pdfs", "fetch_skipped_all"])
def test_no_pdf_under_the_papers_folder_exits_non_zero_and_changes_nothing(content, tmp_path, capsys):
    """Failed before: exit 0, an empty dataset (and --fresh had deleted the earlier build first)."""
    papers = tmp_path / "share"
    papers.mkdir()
    if content == "not_pdfs":
        (papers / "notes.txt").write_text("the PDFs are on the other drive\n")
    if content == "fetch_skipped_all":
        row = {"key": "openalex:W1", "source": "openalex", "status": "skipped", "reason": "no_pdf",
               "fetched_at": "2026-12-07T00:00:00Z"}
        (papers / "papers.jsonl").write_text(json.dumps(row) + "\n")
    out = tmp_path / "out"
    kept = _earlier_build(out)
    assert build.main(["--papers", str(papers), "--out", str(out), "--fresh", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"no PDF under {papers}" in err and "nothing was built or changed" in err
    if content == "fetch_skipped_all":
        assert "papers.jsonl lists 1 candidate(s), 0 downloaded" in err
    assert all(f.read_text() == "{}\n" for f in kept)
    assert not (out / "build_config.json").exists()


def test_a_later_start_does_not_read_the_papers_folder(tmp_path):
    """--from-stage after mine reads the stage files: an empty papers folder is no error there."""
    papers = tmp_path / "share"
    papers.mkdir()
    config = build.BuildConfig(papers=papers, out=tmp_path / "out", workers=1)
    with pytest.raises(build.BuildError, match="no PDF under"):
        build.build(config, "mine", "mine", progress=False)
    build.build(config, "panels", "panels", progress=False)


def test_manual_images_alone_build_from_an_empty_papers_folder(corpus_dir, tmp_path, capsys):
    papers = tmp_path / "empty"
    papers.mkdir()
    out = tmp_path / "out"
    argv = ["--papers", str(papers), "--manual", str(corpus_dir / "manual"), "--out", str(out), "--quiet"]
    assert build.main(argv) == 0
    assert "the dataset holds the --manual images only" in capsys.readouterr().err
    assert json.loads((out / "dataset" / "fracto_train.json").read_text())


def test_first_pdf_knows_a_pdf_by_name_or_by_its_header(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.txt").write_text("text")
    (tmp_path / ".x.pdf.part").write_bytes(b"%PDF-1.7 in progress")  # a fetch's unfinished download
    assert first_pdf(tmp_path) is None
    (tmp_path / "sub" / "paper.bin").write_bytes(b"%PDF-1.4\n")
    assert first_pdf(tmp_path) == tmp_path / "sub" / "paper.bin"


@pytest.mark.parametrize("papers", [False, True])
def test_an_out_path_that_is_a_file_is_a_clear_error(papers, corpus_dir, tmp_path, capsys):
    """Failed before: a NotADirectoryError traceback (from the sample corpus, or from mkdir OUT/stages)."""
    out = tmp_path / "out.txt"
    out.write_text("not a folder\n")
    argv = ["--out", str(out), "--quiet"] + (["--papers", str(corpus_dir / "papers")] if papers else [])
    assert build.main(argv) == 2
    assert f"--out {out}: is a file, not a folder" in capsys.readouterr().err
    assert out.read_text() == "not a folder\n"


@pytest.mark.parametrize("gone", ["filter.jsonl", "dedup.json", "labels.jsonl"])
def test_items_refuses_mined_panels_whose_stage_file_is_missing(gone, corpus_dir, tmp_path):
    """Failed before: a missing filter/dedup/label file was read as empty, so --from-stage items built a dataset
    of the manual images alone (labels.jsonl gone: every panel reported "no_features"; the others: silently)."""
    config = build.BuildConfig(papers=corpus_dir / "papers", manual=corpus_dir / "manual", out=tmp_path / "out",
                               workers=1)
    build.build(config, "mine", "items", progress=False)
    (config.out / "stages" / gone).unlink()
    with pytest.raises(build.BuildError, match=f"stage items failed: missing .*{gone}"):
        build.build(config, "items", "items", progress=False)


def test_split_refuses_a_missing_items_file(tmp_path):
    """Failed before: split read a missing items.jsonl as no items and wrote an empty splits.jsonl (exit 0 with
    --to-stage split; the error came only from augment, if it ran)."""
    config = build.BuildConfig(papers=tmp_path, out=tmp_path / "out", workers=1)
    with pytest.raises(build.BuildError, match=r"stage split failed: .*items.jsonl: missing; the items stage"):
        build.build(config, "split", "split", progress=False)
    assert not (config.out / "stages" / "splits.jsonl").exists()


def test_filter_refuses_a_missing_panels_folder(corpus_dir, tmp_path):
    """Failed before: --from-stage filter on an OUT whose panels stage never ran decided no panels, and the build
    went on to a dataset of the manual images alone, exit 0."""
    config = build.BuildConfig(papers=corpus_dir / "papers", manual=corpus_dir / "manual", out=tmp_path / "out",
                               workers=1)
    with pytest.raises(build.BuildError, match=r"stage filter failed: .*panels: missing; the panels stage"):
        build.build(config, "filter", "export", progress=False)
    assert not (config.out / "dataset").exists()


def test_items_names_dedup_json_when_it_names_a_panel_that_is_gone(corpus_dir, tmp_path):
    """Failed before: a bare KeyError('<panel id>') traceback from the items stage."""
    config = build.BuildConfig(papers=corpus_dir / "papers", manual=corpus_dir / "manual", out=tmp_path / "out",
                               workers=1)
    build.build(config, "mine", "items", progress=False)
    next(iter(sorted((config.out / "stages" / "panels").glob("*.json")))).unlink()
    with pytest.raises(build.BuildError, match=r"stage items failed: .*dedup.json: group .* names a panel that no"):
        build.build(config, "items", "items", progress=False)
