"""Filter decisions and caption-rule labels kept between builds (dataset_builders.stage_cache): reused only while
the panels file's bytes, the stage's settings and the deciding code are those that made them; anything else
recomputes, and what is written equals what a run without any cache writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dataset_builders import filter as filter_stage
from dataset_builders import label as label_stage
from dataset_builders import stage_cache
from dataset_builders.build import build
from dataset_builders.config import BuildConfig
from dataset_builders.records import LabelRecord
from dataset_builders.sample_corpus import generate_corpus
from dataset_builders.stage_cache import (
    StageKeys,
    code_fingerprint,
    code_modules,
    entry_key,
    iter_entries,
    write_entry,
)
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    corpus = tmp_path_factory.mktemp("cache_corpus")
    generate_corpus(corpus, n_papers=4, seed=5)
    out = tmp_path_factory.mktemp("cache_build")
    build(BuildConfig(papers=corpus / "papers", manual=corpus / "manual", out=out, workers=1, seed=5),
          to_stage="label", progress=False)
    return out


def _copy(built: Path, tmp_path: Path) -> StagePaths:
    shutil.copytree(built / "stages", tmp_path / "stages")
    return StagePaths(tmp_path)


def _config(paths: StagePaths, **kw) -> BuildConfig:
    return BuildConfig(out=paths.out, workers=1, seed=5, **kw)


def _edit_caption(paths: StagePaths, paper: str, text: str) -> str:
    """Append text to the caption of the paper's first kept panel; returns that panel's id."""
    kept = {json.loads(line)["panel_id"] for line in paths.filter.read_text().splitlines() if json.loads(line)["keep"]}
    f = paths.panels / f"{paper}.json"
    data = json.loads(f.read_text())
    panel = next(p for p in data["panels"] if p["panel_id"] in kept)
    panel["caption"] = f"{panel['caption'] or ''} {text}"
    f.write_text(json.dumps(data))
    return panel["panel_id"]


def _uncached(paths: StagePaths, tmp_path: Path, stage) -> bytes:
    """What the stage writes on a copy of these stages without its cache."""
    other = StagePaths(tmp_path / "uncached")
    shutil.copytree(paths.stages, other.stages)
    stage.cache_path(other).unlink()
    stage.run(other, _config(other), progress=False)
    return (other.filter if stage is filter_stage else other.labels).read_bytes()


def test_code_fingerprint_follows_the_imports() -> None:
    filter_code = code_modules("dataset_builders.filter")
    # the vocabulary and phrase matching decide through labelling.mentions; the records' shape is read
    assert {"fracto_core.vocabulary", "fracto_core.phrases", "dataset_builders.labelling.mentions",
            "dataset_builders.records", "dataset_builders.filter"} <= set(filter_code)
    assert "dataset_builders.export" not in filter_code and "dataset_builders.augment" not in filter_code
    label_code = code_modules("dataset_builders.label", "dataset_builders.labelling.caption_rules")
    assert {"dataset_builders.pdf.captions", "dataset_builders.panels_by_paper", "fracto_core.vocabulary"} <= set(label_code)
    assert code_fingerprint("dataset_builders.filter") != code_fingerprint("dataset_builders.label")
    assert entry_key("a", "bc") != entry_key("ab", "c")
    with pytest.raises(ValueError, match="no project module"):
        code_modules("dataset_builders.no_such_stage")


def test_filter_reuses_only_unchanged_papers(built: Path, tmp_path: Path, monkeypatch) -> None:
    paths = _copy(built, tmp_path)
    papers = sorted(f.stem for f in paths.panels.glob("*.json"))
    first = paths.filter.read_bytes()
    again = filter_stage.run(paths, _config(paths), progress=False)
    assert again.counts["papers_resumed"] == len(papers) == 4
    assert paths.filter.read_bytes() == first

    changed = _edit_caption(paths, papers[1], "Stress-strain curves of the specimens.")
    result = filter_stage.run(paths, _config(paths), progress=False)
    assert result.counts["papers_resumed"] == 3  # the edited file's bytes changed: decided again
    decisions = {json.loads(line)["panel_id"]: json.loads(line) for line in paths.filter.read_text().splitlines()}
    assert "caption:-stress-strain" in decisions[changed]["reasons"]
    assert paths.filter.read_bytes() == _uncached(paths, tmp_path, filter_stage)

    assert filter_stage.run(paths, _config(paths, filter_min_score=1.5), progress=False).counts["papers_resumed"] == 0
    monkeypatch.setattr(stage_cache, "code_fingerprint", lambda *modules: "another version of the rules")
    assert filter_stage.run(paths, _config(paths), progress=False).counts["papers_resumed"] == 0


def test_filter_ignores_a_broken_cache(built: Path, tmp_path: Path) -> None:
    paths = _copy(built, tmp_path)
    first = paths.filter.read_bytes()
    cache = filter_stage.cache_path(paths)
    cache.write_text(cache.read_text()[:-40])  # cut short, as a full disk would
    result = filter_stage.run(paths, _config(paths), progress=False)
    assert result.counts["papers_resumed"] == 0
    assert paths.filter.read_bytes() == first
    assert [e.entry_id for e in iter_entries(cache)] == sorted(f.stem for f in paths.panels.glob("*.json"))


def test_label_reuses_only_unchanged_groups(built: Path, tmp_path: Path, monkeypatch) -> None:
    paths = _copy(built, tmp_path)
    first = paths.labels.read_bytes()
    n = len(first.splitlines())
    again = label_stage.run(paths, _config(paths), progress=False)
    assert again.counts["reused"] == n >= 8
    assert paths.labels.read_bytes() == first

    paper = sorted(f.stem for f in paths.panels.glob("*.json"))[2]
    changed = _edit_caption(paths, paper, "Fatigue striations are visible.")
    labelled = {json.loads(line)["item_id"] for line in first.decode().splitlines()}
    touching = [g for g in json.loads(paths.dedup.read_text()) if paper in g["paper_ids"]]
    assert any(g["representative"] != changed for g in touching)
    result = label_stage.run(paths, _config(paths), progress=False)
    # every group with a panel in the edited paper (its own, and images reprinted from it) is labelled again
    assert result.counts["reused"] == n - sum(g["representative"] in labelled for g in touching)
    labels = {r.item_id: r for r in read_jsonl(paths.labels, LabelRecord)}
    assert "fatigue striations" in labels[changed].features
    assert paths.labels.read_bytes() == _uncached(paths, tmp_path, label_stage)

    monkeypatch.setattr(stage_cache, "code_fingerprint", lambda *modules: "another version of the rules")
    assert label_stage.run(paths, _config(paths), progress=False).counts["reused"] == 0


def test_label_still_reports_an_unreadable_panels_file_when_reusing(built: Path, tmp_path: Path) -> None:
    paths = _copy(built, tmp_path)
    (paths.panels / "ffffbroken.json").write_text("{", encoding="utf-8")
    result = label_stage.run(paths, _config(paths), progress=False)
    assert result.counts["reused"] == len(paths.labels.read_text().splitlines())
    assert [(p.reason, p.file) for p in result.problems] == [("bad_panels_file", "stages/panels/ffffbroken.json")]


def test_filter_and_label_make_their_keys_with_one_function(built: Path) -> None:
    paths = StagePaths(built)
    paper = sorted(f.stem for f in paths.panels.glob("*.json"))[0]
    panels_file = paths.panels / f"{paper}.json"
    config = _config(paths)
    pydantic = stage_cache.library_versions("pydantic")  # both caches hold pydantic's serialisations
    filter_keys = StageKeys(["dataset_builders.filter"], {"filter_min_score": config.filter_min_score} | pydantic)
    assert filter_stage.paper_keys(paths, config)[paper] == filter_keys.paper(panels_file)
    label_keys = StageKeys(["dataset_builders.label", "dataset_builders.labelling.caption_rules"], pydantic)
    assert label_stage.LabelCache(paths).paper_key(paper) == label_keys.paper(panels_file)
    assert filter_keys.paper(panels_file) != label_keys.paper(panels_file)  # other code, other settings
    assert StageKeys(["dataset_builders.filter"], {"filter_min_score": 9.0} | pydantic).paper(panels_file) != filter_keys.paper(
        panels_file)


def test_a_cache_of_the_previous_format_is_ignored(built: Path, tmp_path: Path, monkeypatch) -> None:
    """A filter cache whose keys are made exactly as this code makes them, but under the previous format
    (stage-cache-1), is not reused: the format is part of every key. Fails if CACHE_FORMAT is not bumped."""
    paths = _copy(built, tmp_path)
    first = paths.filter.read_bytes()
    cache = filter_stage.cache_path(paths)
    with monkeypatch.context() as m:  # this code's keys, as the builder would make them under format 1
        m.setattr(stage_cache, "CACHE_FORMAT", "stage-cache-1")
        code_fingerprint.cache_clear()
        old_keys = filter_stage.paper_keys(paths, _config(paths))
    code_fingerprint.cache_clear()
    assert old_keys != filter_stage.paper_keys(paths, _config(paths)), "CACHE_FORMAT is still stage-cache-1"
    entries = list(iter_entries(cache))
    with open(cache, "w", encoding="utf-8", newline="") as fh:
        for e in entries:
            write_entry(fh, e.entry_id, old_keys[e.entry_id], e.meta, e.lines)
    result = filter_stage.run(paths, _config(paths), progress=False)
    assert result.counts["papers_resumed"] == 0 and paths.filter.read_bytes() == first
    assert filter_stage.run(paths, _config(paths), progress=False).counts["papers_resumed"] == len(entries) == 4


def test_how_keys_are_made_is_pinned_to_the_cache_format(tmp_path: Path, monkeypatch) -> None:
    """A change of how StageKeys makes keys changes this key: give it a new CACHE_FORMAT, then pin both anew."""
    monkeypatch.setattr(stage_cache, "code_fingerprint", lambda *modules: f"code of {modules}")
    (tmp_path / "p.json").write_bytes(b"{}")
    key = StageKeys(["dataset_builders.filter"], {"filter_min_score": 1.0}).paper(tmp_path / "p.json")
    pinned = ("stage-cache-2", "9bd158cf169de74cc274f893aa59073a9e6c3b7e9d4a28279086135a3759a8a9")
    assert (stage_cache.CACHE_FORMAT, key) == pinned


def test_code_modules_read_real_imports_only(tmp_path: Path, monkeypatch) -> None:
    """Imports are read from the syntax tree: an 'import x' in a docstring, comment or string does not pull x in
    (the regex over the text did, for a docstring's usage example); lazy and relative imports still count."""
    pkg = tmp_path / "dataset_builders"
    (pkg / "labelling").mkdir(parents=True)
    for name in ("__init__", "labelling/__init__", "labelling/rules", "records", "export", "augment", "comment",
                 "text"):
        (pkg / f"{name}.py").write_text("")
    (pkg / "stage.py").write_text('"""A stage.\n\nUsage:\n    from dataset_builders import export\n'
                                  '    import dataset_builders.augment\n"""\n\n'
                                  'from . import records  # import dataset_builders.comment\n'
                                  'TEXT = """\nimport dataset_builders.text\n"""\n\n\n'
                                  'def f():\n    from .labelling import rules\n')
    monkeypatch.setattr(stage_cache, "ROOT", tmp_path)
    assert set(code_modules("dataset_builders.stage")) == {
        "dataset_builders", "dataset_builders.stage", "dataset_builders.records", "dataset_builders.labelling",
        "dataset_builders.labelling.rules"}


def test_a_comment_or_docstring_edit_leaves_the_fingerprint_and_a_code_edit_changes_it(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """The fingerprint hashes each module's syntax tree without docstrings: comments, docstrings and moved lines
    change no key (they made every record again); a changed rule does, in the module or one it imports.
    Failed before: the bytes were hashed, so a comment changed the mine, panels and export keys."""
    base = {"stage.py": '"""A stage."""\nfrom . import rules\n\n\ndef f(x):\n    """Twice."""\n    return 2 * x\n',
            "rules.py": "LIMIT = 3\n\n\nclass R:\n    '''A rule.'''\n    n = 1\n"}

    def fingerprint(name: str, **edits: str) -> str:
        pkg = tmp_path / name / "dataset_builders"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        for file, text in (base | edits).items():
            (pkg / file).write_text(text)
        monkeypatch.setattr(stage_cache, "ROOT", tmp_path / name)
        code_fingerprint.cache_clear()
        return code_fingerprint("dataset_builders.stage")

    first = fingerprint("base")
    assert fingerprint("comments", **{"stage.py": "# a note\n" + base["stage.py"].replace("x\n", "x  # why\n")}) == first
    assert fingerprint("docstrings", **{"stage.py": base["stage.py"].replace("A stage.", "Stage 3: more words")
                                        .replace('"""Twice."""', '"""Doubles x.\n\n    Really."""'),
                                        "rules.py": base["rules.py"].replace("'''A rule.'''", "")}) == first
    assert fingerprint("moved", **{"stage.py": "\n\n" + base["stage.py"]}) == first
    assert fingerprint("code", **{"stage.py": base["stage.py"].replace("2 * x", "3 * x")}) != first
    assert fingerprint("imported", **{"rules.py": base["rules.py"].replace("LIMIT = 3", "LIMIT = 4")}) != first
    code_fingerprint.cache_clear()
