"""Per-paper results of the deciding stages (filter decisions, caption-rule labels) kept between builds.

An update (new papers onto a built folder) would otherwise re-decide every old panel. A result is reused
only when nothing that decides it changed: its key is the sha256 of
- the code: ``code_fingerprint`` hashes the syntax tree (``ast.dump``, docstrings removed: a comment, a
  docstring or a moved line changes nothing) of the deciding module and of every project module it imports,
  directly or not (the ``import`` statements of those trees), and the Python version; a builder upgrade that
  changes the code of any of them (the key machinery's, ``MACHINERY``, excepted) recomputes everything. The code is
  read once per process: a build reads it at its start (``pin_code``), so an edit while it runs changes none
  of its keys, and keeps the digests by each file's sha256 (``save_digests``) for the next build, and one file
  each in a folder every output shares (``shared_digest_folder``), so a build into a fresh output parses
  nothing that an earlier build, of any output, parsed;
- the stage's config fields (e.g. filter_min_score) and, where they decide its records, the versions of the
  libraries it runs (``library_versions``: mine's PyMuPDF, panels' Pillow, numpy, ...; pydantic for the
  lines items, augment and export keep, which are its serialisations: kept_lines, export_meta_reuse);
- the input: ``file_digest``, the sha256 of the panels file's bytes (not its stat: a copied, restored or
  rewritten file with the same bytes keeps its results, one with other bytes never does).

Both stages make their keys with one function, ``StageKeys.paper`` (code + settings + a panels file's bytes;
the label stage's group keys are made of those paper keys, ``StageKeys.of``).

The per-paper records of mine (stages/mine/<id>/paper.json) and panels (stages/panels/<id>.json) are their
own cache: each is written after a key file beside it (``write_record_key``: the ``StageKeys.base`` of the code
and settings that made it) and resumed only while that key is current (``record_is_current``); a record
without one (written before keys existed, or by other code) is made again.

The cache file (``stages/<stage>_cache.txt``) holds entries in id order, each a header line
``#<id>\\t<key>\\t<meta>\\t<n>`` and the n JSON lines the stage wrote for it, byte for byte, so a reused
result is copied, not re-serialised. It is written atomically beside the stage's output; a missing, old or
unreadable cache only means recomputing (a broken cache is ignored, never trusted in part).

Usage:
    keys = StageKeys(["dataset_builders.filter"], {"filter_min_score": 1.0})
    key = keys.paper(panels_file)             # the key of a result computed from that paper
    index = read_index(cache_file)            # {id: (key, meta)}
    for entry_id, key, meta, lines in iter_entries(cache_file): ...
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import os
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import NamedTuple, TextIO, TypeVar

from pydantic import BaseModel

from fracto_core.files import file_sha256, read_model, write_text_atomic

PROJECT_PACKAGES = ("dataset_builders", "fracto_core")
# part of every key: a change of the file layout or of how keys are made (2: StageKeys) invalidates old files
CACHE_FORMAT = "stage-cache-2"
CODE_CACHE_ENV = "FRACTOVLM_CODE_CACHE"  # the shared digest folder (shared_digest_folder); set but empty: none
M = TypeVar("M", bound=BaseModel)
# The machinery that makes, checks and caches keys and runs the workers decides no record, so only its name is
# hashed, not its code: a change to it re-makes nothing. A change that must re-make records bumps CACHE_FORMAT
# instead. Its imports are still followed.
MACHINERY = frozenset({"dataset_builders.stage_cache", "dataset_builders.workers", "dataset_builders.resume_summaries"})


ROOT = Path(__file__).resolve().parents[1]  # the folder holding the project's packages


def _module_file(name: str) -> Path | None:
    """The source file of a project module (found on disk, nothing imported), or None (not a project module,
    or an imported name that is not a module, such as a function). Looked up once per process and ROOT: a
    build walks the imports ~11 times (pin_code, every stage's fingerprint), ~1,000 names a walk."""
    return _find_module_file(ROOT, name) if name.split(".")[0] in PROJECT_PACKAGES else None


@cache
def _find_module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Every module name an ``import`` statement anywhere in the module's syntax tree may load (``from a import
    b``: a and a.b; functions import lazily too). Read from the tree, so an ``import x`` in a docstring, a
    comment or a string is not an import (a regex over the text took those too). An import is a statement,
    so only statement lists are walked (_statements), not every expression node (ast.walk: 3x the time)."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _code_digest(tree: ast.Module) -> bytes:
    """sha256 of the tree's ``ast.dump`` without docstrings (the tree is changed): what the code does, not how
    its text is laid out (comments and line numbers are not in the dump)."""
    _drop_docstrings(tree)
    return hashlib.sha256(ast.dump(tree).encode()).digest()


_STATEMENT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")  # the fields that hold statements


def _statements(node: ast.AST) -> Iterator[ast.AST]:
    """Every statement under node (and the except handlers and match cases holding some), found through
    statement lists only: a statement is never inside an expression."""
    for field in _STATEMENT_LISTS:
        children = getattr(node, field, None)
        for child in children if isinstance(children, list) else ():
            yield child
            yield from _statements(child)


def _drop_docstrings(node: ast.AST) -> None:
    """Remove the docstrings of a module, class or function and of those inside it (found through statement
    lists only: a definition is a statement, so no expression need be walked)."""
    body = node.body if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) else []
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        node.body = body[1:] or [ast.Pass()]
    for field in _STATEMENT_LISTS:
        children = getattr(node, field, None)
        for child in children if isinstance(children, list) else ():
            _drop_docstrings(child)


# {(module name, sha256 of its file's bytes): (its _imported_names, its _code_digest)}: what earlier parses
# found, read from and written to a build's digest file (pin_code), so an unchanged file is not parsed again
_known: dict[tuple[str, str], tuple[frozenset[str], bytes]] = {}
_read: dict[str, str] = {}  # {module name: the sha256 of the bytes _parse read}
_shared: list[Path] = []  # while pin_code runs with a shared digest folder: its folder for this Python and maker
_parses = [0]  # files parsed by this process (pin_code reports how many it parsed)


class CodeError(ValueError):
    """A project source file that cannot be read as Python (the message names the file and the reason)."""


@cache
def _parse(name: str, path: Path) -> tuple[frozenset[str], bytes]:
    """(_imported_names, _code_digest) of a project file, read once per process: the first read is what every
    later fingerprint of this process uses (pin_code makes it at build start, so an edit made during a build
    changes none of its keys). Parsed only when no earlier parse of the same bytes is known (~3 ms a file)."""
    source = path.read_bytes()
    sha = _read[name] = hashlib.sha256(source).hexdigest()
    if (name, sha) not in _known:
        package = path.name == "__init__.py"
        shared = _shared[0] / f"{name}{'.__init__' if package else ''}.{sha}.tsv" if _shared else None
        found = _read_digests(shared).get((name, sha)) if shared is not None else None
        if found is None:
            try:
                tree = ast.parse(source.decode("utf-8"), filename=str(path))
            except (SyntaxError, UnicodeDecodeError) as e:
                raise CodeError(f"{path}: not readable as Python ({e})") from None
            _parses[0] += 1
            _known[name, sha] = frozenset(_imported_names(tree, name, package)), _code_digest(tree)
            if shared is not None:
                _share(shared, name, sha)
        else:
            _known[name, sha] = found
    return _known[name, sha]


def code_modules(*modules: str) -> dict[str, Path]:
    """{module name: source file} of the given project modules and of every project module they import,
    directly or not (their packages' __init__ included)."""
    seen: dict[str, Path] = {}
    todo = [m for name in modules for m in _with_parents(name)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen[name] = path
        for imported in _parse(name, path)[0]:
            todo.extend(_with_parents(imported))
    if not all(name in seen for name in modules):
        raise ValueError(f"code_modules: no project module among {[m for m in modules if m not in seen]}")
    return seen


@cache
def code_fingerprint(*modules: str) -> str:
    """sha256 over the code (_code_digest) of code_modules(*modules), parsed once per process (MACHINERY: its
    name only), and the Python version (whose ``ast.dump`` may differ)."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}\n{sys.version}\n".encode())
    for name, path in sorted(code_modules(*modules).items()):
        digest.update(f"{name}\n".encode())
        if name not in MACHINERY:
            digest.update(_parse(name, path)[1])
    return digest.hexdigest()


def pin_code(fingerprinted: Sequence[str], imported: Sequence[str], digest_file: Path | None = None,
             shared: Path | None = None) -> int:
    """Read the code of the modules a build's keys hash, once, at build start in the main process: import the
    code_modules of ``imported`` (the code its workers run: forked, they inherit it; a module imported lazily
    later would be read from disk then), then fix the syntax-tree digests of the code_modules of
    ``fingerprinted`` for this process (_parse): every key made later in it, or in a worker it forks, is made
    of these. ``digest_file`` (written by save_digests) holds digests by the sha256 of each file's bytes, so an
    unchanged file is not parsed again (a parse of all ~90 files costs ~0.3 s CPU). ``shared`` (a folder,
    shared_digest_folder: shared by every output) holds the same entries one file each, by module name, file
    sha256, Python version and this module's version: a fresh output finds them there; what was parsed is
    added. Returns how many files were parsed."""
    if digest_file is not None:
        _known.update(_read_digests(digest_file))
    parsed = _parses[0]
    if shared is not None and (folder := _private_folder(shared / hashlib.sha256(_digests_header().encode())
                                                          .hexdigest()[:16])) is not None:
        _shared.append(folder)
    try:
        for name in code_modules(*imported):
            importlib.import_module(name)
        code_modules(*fingerprinted)
    finally:
        _shared.clear()
    return _parses[0] - parsed


def save_digests(digest_file: Path, modules: Sequence[str]) -> None:
    """Write the digests of code_modules(*modules), as read by this process, to ``digest_file`` when it lacks
    any (written atomically; the file holds this code's entries only, and ends with a checksum line)."""
    used = sorted((name, _read[name]) for name in code_modules(*modules))
    stored = _read_digests(digest_file)
    if any(entry not in stored for entry in used):
        _write_digests(digest_file, used)


def shared_digest_folder() -> Path | None:
    """The folder where builds share their code digests (pin_code's ``shared``): $FRACTOVLM_CODE_CACHE (set but
    empty: none), else $XDG_CACHE_HOME/fractovlm/code-digests, else ~/.cache/fractovlm/code-digests. Safe to
    delete at any time (the next build parses again); each entry is ~1 KB, one per version of a file."""
    value = os.environ.get(CODE_CACHE_ENV)
    if value is not None:
        return Path(value) if value else None
    try:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fractovlm" / "code-digests"
    except RuntimeError:  # no home folder
        return None


def _private_folder(folder: Path) -> Path | None:
    """``folder`` (made if missing, mode 0o700) when it and its parent are real folders owned by this user, whose
    group and world write bits are then removed (a folder made under a umask such as 002); else None, said once on
    stderr: an entry another user could plant would decide which code a record key hashes (a key that does not
    change when the code does), so a symlinked, team or /tmp folder of someone else is not used."""
    try:
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # (parents above it: the umask's mode)
        folder.mkdir(mode=0o700, exist_ok=True)
        for f in (folder.parent, folder):
            st = os.lstat(f)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                return _not_used(folder, f"{f} is {'owned by another user' if stat.S_ISDIR(st.st_mode) else 'not a folder'}")
            if st.st_mode & 0o022:  # ours, made under a umask such as 002: no one else may write to it from now on
                os.chmod(f, stat.S_IMODE(st.st_mode) & ~0o022)
    except OSError as exc:
        return _not_used(folder, str(exc))
    return folder


def _not_used(folder: Path, why: str) -> None:
    """Say once per process why the shared digest folder is not used (every file is then parsed, as without it)."""
    if not _warned:
        _warned.append(folder)
        print(f"[  build] shared code-digest folder {folder.parent} not used: {why}", file=sys.stderr, flush=True)
    return None


_warned: list[Path] = []


def _write_digests(path: Path, entries: Sequence[tuple[str, str]]) -> None:
    """A digest file of these (name, sha256) entries of _known, written atomically, ending with a checksum line."""
    lines = [_digests_header(), *(f"{name}\t{sha}\t{_known[name, sha][1].hex()}\t{','.join(sorted(_known[name, sha][0]))}"
                                  for name, sha in entries)]
    body = "\n".join(lines) + "\n"
    write_text_atomic(path, body + _checksum_line(body), durable=False)


def _share(path: Path, name: str, sha: str) -> None:
    """One parse's entry in the shared folder; one that cannot be written (a read-only or full cache folder) is
    left out: the next build parses that file again."""
    try:
        _write_digests(path, [(name, sha)])
    except OSError:
        pass


# how digests are made: this module's own bytes (its _code_digest, _imported_names), the key format, the Python
_MAKER = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _digests_header() -> str:
    return f"{CACHE_FORMAT}\t{sys.version}\t{_MAKER}"


def _checksum_line(body: str) -> str:
    return f"end\t{hashlib.sha256(body.encode()).hexdigest()}\n"


def _read_digests(path: Path) -> dict[tuple[str, str], tuple[frozenset[str], bytes]]:
    """The digest file's entries; none when it is missing, unreadable, torn (its last line is a checksum of the
    rest), or made by another Python, key format or version of this module."""
    try:
        text = path.read_text(encoding="utf-8")
        body, sep, last = text.rstrip("\n").rpartition("\n")
        body += sep
        if not sep or f"{last}\n" != _checksum_line(body):
            return {}
        first, *lines = body.splitlines()
        if first != _digests_header():
            return {}
        entries = {}
        for line in lines:
            name, sha, digest, imports = line.split("\t")
            entries[name, sha] = frozenset(imports.split(",")) - {""}, bytes.fromhex(digest)
        return entries
    except (OSError, UnicodeDecodeError, ValueError):
        return {}


def library_versions(*modules: str) -> dict[str, str]:
    """{module: its version} of third-party libraries whose output decides a stage's records, for its settings
    (a library upgrade then makes them again); pymupdf: the binding's and MuPDF's."""
    versions = {}
    for name in modules:
        lib = importlib.import_module(name)
        versions[name] = f"{lib.VersionBind} MuPDF {lib.VersionFitz}" if name == "pymupdf" else lib.__version__
    return versions


@cache
def _with_parents(name: str) -> tuple[str, ...]:
    parts = name.split(".")
    return tuple(".".join(parts[:i]) for i in range(1, len(parts) + 1))


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes; "missing" when it cannot be read (so a key made from it matches nothing
    a readable file gave)."""
    try:
        return file_sha256(path)
    except OSError:
        return "missing"


def entry_key(*parts: str) -> str:
    """sha256 of the parts (code fingerprint, config fields, input digests), in order."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


class StageKeys:
    """The keys of one stage's cached results: the stage's code (code_fingerprint of ``modules``), its settings
    (name=value, sorted) and, per result, the inputs it was computed from."""

    def __init__(self, modules: Sequence[str], settings: Mapping[str, object] | None = None):
        spelled = ",".join(f"{name}={value!r}" for name, value in sorted((settings or {}).items()))
        self.base = entry_key(code_fingerprint(*modules), spelled)
        self._papers: dict[Path, str] = {}

    def paper(self, panels_file: Path) -> str:
        """The key of a result computed from one paper's panels file (its bytes, hashed once per StageKeys)."""
        if panels_file not in self._papers:
            self._papers[panels_file] = entry_key(self.base, "paper", file_digest(panels_file))
        return self._papers[panels_file]

    def of(self, *parts: str) -> str:
        """The key of a result computed from several inputs (e.g. paper keys and a group's JSON)."""
        return entry_key(self.base, *parts)


def key_file(record: Path) -> Path:
    """Where the key of the per-paper record at ``record`` lives (mine's paper.json, panels' <paper_id>.json)."""
    return record.with_suffix(".key")


def record_is_current(key_file: Path, key: str) -> bool:
    """Was the per-paper record beside key_file made with this key (its code and settings)?"""
    try:
        return key_file.read_text(encoding="utf-8") == f"{key}\n"
    except (OSError, UnicodeDecodeError):
        return False


def current_record(record: Path, model: type[M], key: str) -> M | None:
    """The per-paper record at ``record`` (read as ``model``) when its key file (``record`` with the suffix .key)
    holds this key and the record reads; else None (made again)."""
    if not record_is_current(key_file(record), key):
        return None
    try:
        return read_model(record, model)
    except (OSError, ValueError):
        return None


def write_record_key(key_file: Path, key: str) -> None:
    """Written before the record it keys, once an older record is gone (a kill in between leaves no record,
    which is made again)."""
    write_text_atomic(key_file, f"{key}\n", durable=False)


class Entry(NamedTuple):
    entry_id: str
    key: str
    meta: str
    lines: list[str]


def iter_entries(path: Path) -> Iterator[Entry]:
    """The entries of a cache file in file order; raises ValueError naming the file on a malformed one."""
    with open(path, encoding="utf-8", newline="") as fh:
        for n, header in enumerate(fh, 1):
            fields = header.rstrip("\n").split("\t")
            if len(fields) != 4 or not fields[0].startswith("#") or not fields[3].isdigit():
                raise ValueError(f"{path}:{n}: not a cache entry header")
            lines = [fh.readline() for _ in range(int(fields[3]))]
            if lines and not lines[-1].endswith("\n"):
                raise ValueError(f"{path}:{n}: entry {fields[0][1:]} is cut short")
            yield Entry(fields[0][1:], fields[1], fields[2], lines)


def read_index(path: Path) -> dict[str, tuple[str, str]]:
    """{id: (key, meta)} of a cache file (its lines are not kept); empty when it is missing or broken."""
    try:
        return {e.entry_id: (e.key, e.meta) for e in iter_entries(path)}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def write_entry(fh: TextIO, entry_id: str, key: str, meta: str, lines: list[str]) -> None:
    fh.write(f"#{entry_id}\t{key}\t{meta}\t{len(lines)}\n")
    fh.writelines(lines)
