"""Where each stage keeps its files, and crash-safe ways to write them.

A run killed with SIGKILL must leave nothing half-written that a re-run would trust: every file is
written to a temporary name in the same folder, fsync'd (bulk images may opt out: see
write_bytes_atomic), then renamed into place (atomic on POSIX).
A stage that sees its output file already present may therefore trust it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, ContextManager, Iterable, TextIO, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks into one reused buffer (hashlib.file_digest)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new temporary file in path's folder (made on first use: a mkdir per image file costs)."""
    try:
        return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


@contextmanager
def _open_atomic(path: Path, mode: str, durable: bool) -> Iterator[IO]:
    path = Path(path)
    fd, tmp = _temp_beside(path)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as fh:
            yield fh
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_text_atomic(path: Path, durable: bool = True) -> ContextManager[TextIO]:
    """A text file written piece by piece that appears at path whole or not at all (as write_text_atomic):
    a large JSON list or JSONL file is streamed out instead of being joined into one string first.

    Usage: ``with open_text_atomic(out / "x.jsonl") as fh: fh.write(line)``
    """
    return _open_atomic(path, "w", durable)


def text_lines(text: str) -> list[str]:
    """The lines of a JSON-lines text, split at "\n" only; a final "\n" ends the last line, it opens no empty one.

    Not str.splitlines: it also breaks at U+2028, U+2029, U+0085, \v, \f and \x1c-\x1e, which JSON writers keep
    raw inside strings (ensure_ascii=False, as export's meta lines, the fetch manifest and a model's reply in an
    eval log are written), so one record became two unparseable halves."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def write_bytes_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Write data to path atomically (temporary name in the same folder, then rename).

    durable=True also fsyncs the file before the rename, so it survives a power loss or kernel crash.
    A SIGKILL of this process alone cannot lose bytes already handed to the kernel, and the rename is
    atomic either way, so bulk image files pass durable=False (the fsync was ~60 % of their write
    cost); records (JSON/JSONL), which the stages trust on resume, keep the default.
    """
    with _open_atomic(path, "wb", durable) as fh:
        fh.write(data)


def write_text_atomic(path: Path, text: str, durable: bool = True) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


def write_json_atomic(path: Path, obj, durable: bool = True) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=False) + "\n", durable=durable)


def write_json_list_atomic(path: Path, values: Iterable) -> int:
    """A JSON list with the exact text of write_json_atomic(path, list(values)) (indent=1), written a value
    at a time: json.dumps of a whole indented list builds every small piece of its text first (the pure
    Python encoder: ~23 MiB for dedup's 14,000 groups). Returns the count."""
    n = 0
    with open_text_atomic(path) as fh:
        for value in values:
            fh.write(("[\n " if n == 0 else ",\n ") + _indented_1(value).replace("\n", "\n "))
            n += 1
        fh.write("\n]\n" if n else "[]\n")
    return n


_SCALAR = json.JSONEncoder(ensure_ascii=False).encode  # the C encoder: what indent=1 writes for a scalar
_FLAT = (str, int, float, bool, type(None))


def _indented_1(value) -> str:
    """json.dumps(value, indent=1, ensure_ascii=False), the same text, ~4x faster for a dict of strings, numbers
    and lists of them (dedup's groups: indent runs the pure Python encoder); anything else goes to json.dumps."""
    if not isinstance(value, dict) or not value or not all(type(k) is str for k in value):
        return json.dumps(value, indent=1, ensure_ascii=False)
    lines = []
    for k, v in value.items():
        if isinstance(v, list) and all(isinstance(x, _FLAT) for x in v):
            text = "[\n  " + ",\n  ".join(map(_SCALAR, v)) + "\n ]" if v else "[]"
        elif isinstance(v, _FLAT):
            text = _SCALAR(v)
        else:
            return json.dumps(value, indent=1, ensure_ascii=False)
        lines.append(f"{_SCALAR(k)}: {text}")
    return "{\n " + ",\n ".join(lines) + "\n}"


def write_model_atomic(path: Path, record: BaseModel, durable: bool = True) -> None:
    """durable=False suits per-paper records: one that a power loss left unreadable is simply redone."""
    write_text_atomic(path, record.model_dump_json(indent=1) + "\n", durable=durable)


def file_identity(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """(inode, size, modification time in ns) of a file, None when it cannot be stat'ed: what a file written
    atomically (a new inode) or in place (a new size or time) changes, for caches that trust a file while it holds."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class PathSet:
    """A set of path strings held as their 64-bit hashes (8 bytes each in a sorted array, not ~190 bytes of
    str and set slot): what remove_unlisted keeps, which it only asks `in` (a Path asks as its str). Two
    paths of one hash (~n^2 / 2^64) would keep an unlisted file, never remove a listed one."""

    def __init__(self) -> None:
        self._added = array("q")
        self._sorted: array | None = None

    def add(self, path: str) -> None:
        self._added.append(hash(path))
        self._sorted = None

    def _array(self) -> array:
        if self._sorted is None:
            self._sorted = array("q", sorted(set(self._added)))
        return self._sorted

    def __len__(self) -> int:
        return len(self._array())

    def __contains__(self, path: object) -> bool:
        key = hash(path if isinstance(path, str) else str(path))
        found = self._array()
        i = bisect_left(found, key)
        return i < len(found) and found[i] == key


def remove_unlisted(folder: Path, keep: set[Path] | set[str] | PathSet) -> int:
    """Remove every file under folder (recursively) that keep does not list, then the subfolders left
    empty (folder itself stays). Returns the number of files removed; a missing folder removes nothing.
    For stage outputs a re-run no longer plans, including a killed run's temporary files.
    keep: Paths, or their str() (a path string takes half the memory of a Path), or a PathSet."""
    removed = 0
    for here, _, names in sorted(os.walk(folder), reverse=True):  # deepest first
        here_path = Path(here)
        for name in names:
            full = os.path.join(here, name)  # = str(here_path / name): no Path made for a kept file
            if full not in keep and Path(full) not in keep:
                Path(full).unlink(missing_ok=True)
                removed += 1
        if here_path != Path(folder) and not any(here_path.iterdir()):
            here_path.rmdir()
    return removed


def read_model(path: Path, model: type[M]) -> M:
    return model.model_validate_json(Path(path).read_text(encoding="utf-8"))


def write_jsonl_atomic(path: Path, records: Iterable[BaseModel]) -> int:
    """One record per line, streamed (no list of lines or joined text is held); returns the count."""
    n = 0
    with open_text_atomic(path) as fh:
        for r in records:
            fh.write(r.model_dump_json() + "\n")
            n += 1
    return n


def iter_json_list(path: Path) -> Iterator:
    """The values of a file holding one JSON list (any layout), parsed one at a time: the file's text is
    held, the parsed list never is (a 14,000-group dedup.json: 2.6 MB of text, ~9 MiB as dicts). A file
    that is not valid JSON raises json.JSONDecodeError, as json.loads would (after the values before the
    fault); one whose top level is not a list raises NotAJsonList."""
    text = Path(path).read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    i = _skip_space(text, 0)
    if not text.startswith("[", i):
        json.loads(text)  # the error json.loads gives, if any
        raise NotAJsonList(f"{path}: expected a JSON list")
    i = _skip_space(text, i + 1)
    if text.startswith("]", i):
        if _skip_space(text, i + 1) != len(text):
            raise json.JSONDecodeError("Extra data", text, _skip_space(text, i + 1))
        return
    while True:
        value, i = decoder.raw_decode(text, i)
        yield value
        i = _skip_space(text, i)
        if text.startswith(",", i):
            i = _skip_space(text, i + 1)
        elif text.startswith("]", i):
            if _skip_space(text, i + 1) != len(text):
                raise json.JSONDecodeError("Extra data", text, _skip_space(text, i + 1))
            return
        else:
            raise json.JSONDecodeError("Expecting ',' delimiter", text, i)


class NotAJsonList(ValueError):
    """iter_json_list: the file holds valid JSON whose top level is not a list."""


_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace


def _skip_space(text: str, i: int) -> int:
    return _SPACE.match(text, i).end()


def iter_jsonl(path: Path, model: type[M]) -> Iterator[M]:
    """The records of a JSONL file one at a time (none held); a bad line raises naming the file and line."""
    with open(path, encoding="utf-8") as fh:
        try:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    yield jsonl_record(path, n, line, model)
        except UnicodeDecodeError as exc:  # raised while decoding ahead: it named neither the file nor the line
            raise ValueError(f"{path}:{_first_undecodable_line(path)}: not UTF-8 text ({exc.reason})") from exc


def _first_undecodable_line(path: Path) -> int:
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return n
    return 0


def jsonl_record(path: Path, n: int, line: str, model: type[M]) -> M:
    """Line n (counted from 1) of a JSONL file as a record; a bad one raises naming the file and line."""
    try:
        return model.model_validate_json(line)
    except ValueError as exc:
        raise ValueError(f"{path}:{n}: not a valid {model.__name__} record: {exc}") from exc


def read_jsonl(path: Path, model: type[M]) -> list[M]:
    """Read a JSONL file of records; a bad line raises naming the file and line number."""
    return list(iter_jsonl(path, model))
