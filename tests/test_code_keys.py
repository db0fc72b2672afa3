"""The code a build's record keys hash is read once, at build start (stage_cache.pin_code): an edit made while
the build runs changes none of its keys, and a digest file spares the next build the parse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataset_builders import stage_cache
from dataset_builders.sample_corpus import generate_corpus
from dataset_builders.stages import STAGE_MODULES


@pytest.fixture
def fresh_reads(monkeypatch):
    """A process that has read no project file yet (the parses are kept per process)."""
    monkeypatch.setattr(stage_cache, "_known", {})
    stage_cache._parse.cache_clear()
    stage_cache.code_fingerprint.cache_clear()
    yield
    stage_cache._parse.cache_clear()
    stage_cache.code_fingerprint.cache_clear()


EDIT_ONCE_STARTED = """
import sys
from pathlib import Path
from dataset_builders import build
from dataset_builders.config import BuildConfig

papers, out, module, added, to_stage = sys.argv[1:]
source = Path(build.__file__).with_name(module)
original = source.read_text()
prepare_inputs = build.prepare_inputs

def edit_once_started(config):
    # someone edits the code while the build runs (here: before the first stage; a comment would change no key)
    source.write_text(original + added)
    return prepare_inputs(config)

build.prepare_inputs = edit_once_started
try:
    build.build(BuildConfig(papers=Path(papers), out=Path(out), workers=2, seed=5), to_stage=to_stage, progress=False)
finally:
    source.write_text(original)
"""


def _project_copy(tmp_path):
    corpus, code = tmp_path / "corpus", tmp_path / "code"
    generate_corpus(corpus, n_papers=2, seed=5)
    for package in stage_cache.PROJECT_PACKAGES:
        shutil.copytree(stage_cache.ROOT / package, code / package, ignore=shutil.ignore_patterns("__pycache__"))
    return corpus / "papers", code, {**os.environ, "PYTHONPATH": str(code)}


def _edit_during_a_build_then_rebuild(tmp_path, module: str, added: str, to_stage: str) -> Path:
    """A build in which ``module`` gets ``added`` once it has started, then a build of the unedited code."""
    papers, code, env = _project_copy(tmp_path)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-c", EDIT_ONCE_STARTED, str(papers), str(out), module, added, to_stage],
                         env=env, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    subprocess.run([sys.executable, "-m", "dataset_builders.build", "--papers", str(papers), "--out", str(out),
                    "--workers", "2", "--seed", "5", "--to-stage", to_stage, "--quiet"], env=env, check=True,
                   cwd=tmp_path, capture_output=True)
    return out


def test_an_edit_during_a_build_changes_none_of_its_keys(tmp_path):
    """records.py edited on disk once the build has started (in a copy of the project): the mine and panels
    records, made in workers, carry the key of the code that made them (imported at the start), so the next
    build, of the unedited code, resumes them all. Failed before: mine made its key from the disk when its stage
    began, so the next build mined and split every paper again ("code_remined")."""
    out = _edit_during_a_build_then_rebuild(tmp_path, "records.py", "\nEDITED_DURING_THE_BUILD = 1\n", "panels")
    mined, split = (json.loads((out / "stages" / "results" / f"{stage}.json").read_text())["counts"]
                    for stage in ("mine", "panels"))
    assert (mined["resumed"], "code_remined" in mined, split["papers_resumed"]) == (2, False, 2), (mined, split)


def test_a_digest_file_spares_the_parse_and_keeps_every_key(fresh_reads, tmp_path, monkeypatch):
    digests = tmp_path / "code_digests.tsv"
    assert stage_cache.pin_code(STAGE_MODULES.values(), (), digests) > 50
    keys = [stage_cache.code_fingerprint(m) for m in STAGE_MODULES.values()]
    stage_cache.save_digests(digests, STAGE_MODULES.values())
    for stored in ("this Python", "another Python"):
        if stored == "another Python":
            header, *lines = digests.read_text().splitlines()
            digests.write_text("\n".join([header.replace("\t", "\t2.7 ", 1), *lines]) + "\n")
        monkeypatch.setattr(stage_cache, "_known", {})
        stage_cache._parse.cache_clear()
        stage_cache.code_fingerprint.cache_clear()
        parsed = stage_cache.pin_code(STAGE_MODULES.values(), (), digests)
        assert (parsed > 50) == (stored == "another Python")
        assert [stage_cache.code_fingerprint(m) for m in STAGE_MODULES.values()] == keys


def test_the_key_machinery_is_not_part_of_a_key(fresh_reads, tmp_path, monkeypatch):
    """An edit of stage_cache (how keys are made and cached) or workers (how jobs run) re-makes no record; an
    edit of a module that decides records does."""
    def fingerprint(name: str, **edits: str) -> str:
        files = {"__init__.py": "", "stage.py": "from . import rules, stage_cache, workers\n", "rules.py": "N = 1\n",
                 "stage_cache.py": "KEY = 1\n", "workers.py": "POOL = 1\n"} | edits
        for file, text in files.items():
            (tmp_path / name / "dataset_builders" / file).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / "dataset_builders" / file).write_text(text)
        monkeypatch.setattr(stage_cache, "ROOT", tmp_path / name)
        stage_cache.code_fingerprint.cache_clear()
        return stage_cache.code_fingerprint("dataset_builders.stage")

    first = fingerprint("base")
    assert fingerprint("keys", **{"stage_cache.py": "KEY = 2\n", "workers.py": "POOL = 2\n"}) == first
    assert fingerprint("rule", **{"rules.py": "N = 2\n"}) != first


def test_a_stage_imported_late_runs_the_code_its_keys_hash(tmp_path):
    """filter.py edited once the build has started: the filter stage runs the code as it was at the start (every
    stage the build runs is imported then), so its cached decisions carry the key of the code that made them and
    the next build resumes them. Failed before: only mine and panels were imported at the start, the filter ran
    the edited code from disk under the key of the original."""
    out = _edit_during_a_build_then_rebuild(tmp_path, "filter.py", "\ndef decide(*args, **kwargs):\n"
                                            "    raise SystemExit('the edited filter ran')\n", "filter")
    counts = json.loads((out / "stages" / "results" / "filter.json").read_text())["counts"]
    assert counts["papers_resumed"] == 2 and counts["kept"] > 0, counts


def test_a_stage_module_that_is_not_python_stops_the_build_naming_the_file(tmp_path):
    """A syntax error in the code of a stage the build runs: exit 2 with the file and the reason, nothing built;
    in a stage it does not run (qa without --qa): no error."""
    papers, code, env = _project_copy(tmp_path)
    base = [sys.executable, "-m", "dataset_builders.build", "--papers", str(papers), "--to-stage", "panels", "--quiet"]
    (code / "dataset_builders" / "qa.py").write_text("def broken(:\n")
    assert subprocess.run([*base, "--out", str(tmp_path / "a")], env=env, cwd=tmp_path,
                          capture_output=True).returncode == 0
    (code / "dataset_builders" / "panel_marks.py").write_bytes(b"x = '\xff'\n")  # imported by panels, not UTF-8
    run = subprocess.run([*base, "--out", str(tmp_path / "b")], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 2 and "panel_marks.py: not readable as Python" in run.stderr, run.stderr[-2000:]
    assert not (tmp_path / "b" / "stages" / "mine").exists()


def test_a_torn_or_foreign_digest_file_is_not_trusted(fresh_reads, tmp_path, monkeypatch):
    """A digest file cut short (a line torn inside its import list still splits into four fields) or written by
    another version of stage_cache (which may make digests otherwise) is ignored: every file is parsed again."""
    digests = tmp_path / "code_digests.tsv"
    stage_cache.pin_code(STAGE_MODULES.values(), (), digests)
    stage_cache.save_digests(digests, STAGE_MODULES.values())
    whole = digests.read_text()

    def parsed_with(text: str, maker: str) -> int:
        digests.write_text(text)
        monkeypatch.setattr(stage_cache, "_known", {})
        monkeypatch.setattr(stage_cache, "_MAKER", maker)
        stage_cache._parse.cache_clear()
        stage_cache.code_fingerprint.cache_clear()
        return stage_cache.pin_code(STAGE_MODULES.values(), (), digests)

    maker = stage_cache._MAKER
    assert parsed_with(whole, maker) == 0
    body = whole[:whole.rindex("end\t")]
    assert parsed_with(body[:body.rindex(",") + 1] + "\n", maker) > 50  # torn inside the last import list
    assert parsed_with(whole, "another stage_cache") > 50
