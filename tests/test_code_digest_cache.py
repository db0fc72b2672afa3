"""The code digests every output shares (stage_cache.pin_code's ``shared`` folder): a build into a fresh output
parses no file an earlier build parsed, makes the same keys, trusts no torn or foreign entry, and an edited file
is parsed again; the faster import walk finds what ast.walk finds."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataset_builders import stage_cache
from dataset_builders.sample_corpus import generate_corpus
from dataset_builders.stages import STAGE_MODULES

MODULES = tuple(STAGE_MODULES.values())


def _fresh_process(monkeypatch) -> None:
    """What a new process knows: no parse, no digest, no fingerprint."""
    monkeypatch.setattr(stage_cache, "_known", {})
    stage_cache._parse.cache_clear()
    stage_cache.code_fingerprint.cache_clear()


@pytest.fixture
def fresh(monkeypatch):
    _fresh_process(monkeypatch)
    yield
    stage_cache._parse.cache_clear()
    stage_cache.code_fingerprint.cache_clear()


def _entries(shared: Path) -> list[Path]:
    return sorted(shared.rglob("*.tsv"))


def test_a_fresh_output_parses_nothing_an_earlier_build_parsed(fresh, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    assert stage_cache.pin_code(MODULES, (), None, shared) > 50
    keys = [stage_cache.code_fingerprint(m) for m in MODULES]
    entries = _entries(shared)
    assert len(entries) == len(stage_cache.code_modules(*MODULES))
    _fresh_process(monkeypatch)
    assert stage_cache.pin_code(MODULES, (), None, shared) == 0  # no digest file of its own: the shared one
    assert [stage_cache.code_fingerprint(m) for m in MODULES] == keys
    _fresh_process(monkeypatch)
    assert stage_cache.pin_code(MODULES, (), None, None) > 50  # without the folder: parsed as before
    assert [stage_cache.code_fingerprint(m) for m in MODULES] == keys


def test_a_torn_foreign_or_misnamed_entry_is_parsed_again(fresh, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    stage_cache.pin_code(MODULES, (), None, shared)
    keys = [stage_cache.code_fingerprint(m) for m in MODULES]
    entries = _entries(shared)
    torn, foreign, misnamed = entries[:3]
    torn.write_text(torn.read_text()[:-20])
    header, *rest = foreign.read_text().splitlines(keepends=True)
    body = header.replace("\t", "\t2.7 ", 1) + "".join(rest[:-1])
    foreign.write_text(body + stage_cache._checksum_line(body))  # another Python's, its checksum recomputed
    misnamed.write_text(entries[3].read_text())  # a whole entry, of another file
    _fresh_process(monkeypatch)
    assert stage_cache.pin_code(MODULES, (), None, shared) == 3
    assert [stage_cache.code_fingerprint(m) for m in MODULES] == keys
    _fresh_process(monkeypatch)
    assert stage_cache.pin_code(MODULES, (), None, shared) == 0  # the three were written again


def test_entries_are_kept_by_python_and_maker(fresh, tmp_path, monkeypatch):
    """Another version of stage_cache (which may make digests otherwise) uses a folder of its own."""
    shared = tmp_path / "shared"
    stage_cache.pin_code(MODULES, (), None, shared)
    _fresh_process(monkeypatch)
    monkeypatch.setattr(stage_cache, "_MAKER", "another stage_cache")
    assert stage_cache.pin_code(MODULES, (), None, shared) > 50
    assert len({p.parent for p in _entries(shared)}) == 2


def test_an_unwritable_folder_only_means_parsing(fresh, tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    assert stage_cache.pin_code(MODULES, (), None, blocker / "shared") > 50


def test_the_folder_is_chosen_by_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(stage_cache.CODE_CACHE_ENV, str(tmp_path / "mine"))
    assert stage_cache.shared_digest_folder() == tmp_path / "mine"
    monkeypatch.setenv(stage_cache.CODE_CACHE_ENV, "")
    assert stage_cache.shared_digest_folder() is None
    monkeypatch.delenv(stage_cache.CODE_CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert stage_cache.shared_digest_folder() == tmp_path / "xdg" / "fractovlm" / "code-digests"


EDIT_AND_BUILD = """
import sys
from pathlib import Path
from dataset_builders import build, stage_cache
from dataset_builders.config import BuildConfig

papers, out, added = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if added:
    source = Path(build.__file__).with_name("filter.py")
    source.write_text(source.read_text() + added)
parses = []
pin_code = build.pin_code
build.pin_code = lambda *args: parses.append(pin_code(*args)) or parses[-1]
build.build(BuildConfig(papers=papers, out=out, workers=1, seed=5), to_stage="filter", progress=False)
print("PARSED", parses[0])
"""


def test_an_edit_is_parsed_and_changes_the_keys_it_should(tmp_path):
    """Builds into fresh outputs of a copy of the project, sharing one folder: the second parses nothing and
    makes the same keys; after an edit of filter.py only that file is parsed, and the filter's key
    changes while mine's does not."""
    corpus, code, shared = tmp_path / "corpus", tmp_path / "code", tmp_path / "shared"
    generate_corpus(corpus, n_papers=2, seed=5)
    for package in stage_cache.PROJECT_PACKAGES:
        shutil.copytree(stage_cache.ROOT / package, code / package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(code), stage_cache.CODE_CACHE_ENV: str(shared)}

    def build(out: str, added: str = "") -> tuple[int, dict[str, str]]:
        run = subprocess.run([sys.executable, "-c", EDIT_AND_BUILD, str(corpus / "papers"), str(tmp_path / out),
                              added], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        parsed = int(run.stdout.split("PARSED ")[1].split()[0])
        cache = (tmp_path / out / "stages" / "filter_cache.txt").read_text().splitlines()[0].split("\t")[1]
        mined = next((tmp_path / out / "stages" / "mine").rglob("paper.key")).read_text()
        return parsed, {"filter": cache, "mine": mined}

    first, keys = build("a")
    again, same = build("b")
    edited, other = build("c", "\nFILTER_EDITED = 1\n")
    assert first > 50 and again == 0 and same == keys
    assert edited == 1 and other["mine"] == keys["mine"] and other["filter"] != keys["filter"]


def test_the_statement_walk_finds_every_import_ast_walk_finds():
    """_imported_names walks statement lists only; on every project module and a sample of the standard
    library (nested functions, classes, try/except, with, match, if TYPE_CHECKING) it finds the same names."""
    files = [*stage_cache.ROOT.joinpath("dataset_builders").rglob("*.py"), *stage_cache.ROOT.joinpath(
        "fracto_core").rglob("*.py"), *sorted(Path(ast.__file__).parent.glob("*.py"))[:150]]
    for path in files:
        tree = ast.parse(path.read_bytes())
        walked = {n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))}
        assert {n for n in stage_cache._statements(tree) if isinstance(n, (ast.Import, ast.ImportFrom))} == walked, path


@pytest.mark.parametrize("how", ["another_owner", "symlinked"])
def test_a_folder_others_could_write_is_not_used(fresh, tmp_path, monkeypatch, capsys, how):
    """An entry another user could plant would decide which code a key hashes: a shared folder owned by someone
    else, or whose version folder is a symlink, is neither read nor written (every file parsed), and says why."""
    shared = tmp_path / "shared"
    stage_cache.pin_code(MODULES, (), None, shared)
    keys = [stage_cache.code_fingerprint(m) for m in MODULES]
    (version,) = {p.parent for p in _entries(shared)}
    if how == "another_owner":
        other = os.getuid() + 1
        monkeypatch.setattr(stage_cache.os, "getuid", lambda: other)
    else:
        elsewhere = tmp_path / "elsewhere"
        version.rename(elsewhere)
        version.symlink_to(elsewhere)
    n_entries = len(list(_entries(tmp_path)))
    _fresh_process(monkeypatch)
    monkeypatch.setattr(stage_cache, "_warned", [])
    assert stage_cache.pin_code(MODULES, (), None, shared) > 50  # nothing read
    assert [stage_cache.code_fingerprint(m) for m in MODULES] == keys
    assert len(list(_entries(tmp_path))) == n_entries  # nothing written
    assert f"shared code-digest folder {shared} not used" in capsys.readouterr().err


def test_a_folder_made_group_writable_is_made_private_and_used(fresh, tmp_path, monkeypatch):
    """Under a umask such as 002 an earlier version made the folder group-writable: it is ours, so its group and
    world write bits are removed and its entries used."""
    shared = tmp_path / "shared"
    stage_cache.pin_code(MODULES, (), None, shared)
    (version,) = {p.parent for p in _entries(shared)}
    for f in (shared, version):
        f.chmod(0o777)
    _fresh_process(monkeypatch)
    assert stage_cache.pin_code(MODULES, (), None, shared) == 0
    assert {oct(f.stat().st_mode & 0o777) for f in (shared, version)} == {oct(0o755)}
