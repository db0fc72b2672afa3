"""A stage's output lines kept between builds, per entry, with the key of what they were made from.

An update of 100 papers onto 2,000 made the items stage's ~15,000 items.jsonl lines and augment's ~12,000
train items' plans again (each item's panels read, its record built and dumped), although ~95 % come out the
same. A stage that makes an entry's lines from known inputs keeps them here with the key of those inputs;
the next build copies an entry's lines when it comes with the same key, and makes them otherwise.

File (e.g. ``stages/items_kept.tsv``): a header ``#<file key>`` (the stage's code and settings with
pydantic's version, which wrote the lines: stage_cache.StageKeys, library_versions), then one line per entry, in increasing entry id order:
``<entry id>\\t<key>\\t<digest>\\t<line>[\\t<line>...]``, the digest a blake2b of everything before it and
after it on that line. Lines hold no tab or newline (JSON lines: both are escaped); an entry whose id or
lines do would not fit the layout and is not kept (made next time). A missing file, another file key, a
garbled, cut or edited line, entries out of order: from there on nothing is copied, the lines are made
(tested in tests/test_kept_lines.py). The new file is written atomically beside the old one, which is read
alongside, so neither is held whole.

Usage (items.run, augment.run):
    with ExitStack() as stack:
        kept = KeptLines.open(path, file_key, stack)
        lines = kept.take(entry_id, key)         # the lines kept under that key, or None: make them
        kept.record(entry_id, key, lines)        # entries in increasing id order
"""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO, TextIO

from fracto_core.files import open_text_atomic


def key_of(*parts: str) -> str:
    """blake2b (hex, 32 characters) of the parts, in order."""
    text = "\x00".join(parts) + "\x00"  # each part followed by a NUL, hashed in one call
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _digest(entry_id: str, key: str, payload: str) -> str:
    return key_of(entry_id, key, payload)


class KeptLines:
    """The last build's kept lines, read in step with this build's entries; this build's, written."""

    def __init__(self, old: BinaryIO | None, new: TextIO | None):
        self.old, self.new = old, new
        self.reused = 0
        self._taken = ""  # the last id asked for
        self._recorded = ""  # the last id written
        self._old_last = ""  # the last id read from the old file
        self._entry: tuple[str, str, list[str]] | None = self._next()

    @classmethod
    def open(cls, path: Path, file_key: str, stack: ExitStack, reuse: bool = True, keep: bool = True) -> KeptLines:
        """reuse: read the last build's file; keep: write this build's (atomically, when the stack closes)."""
        old = None
        if reuse:
            try:
                old = stack.enter_context(open(path, "rb"))
                if old.readline() != f"#{file_key}\n".encode():
                    old = None
            except OSError:
                old = None
        new = None
        if keep:
            new = stack.enter_context(open_text_atomic(path, durable=False))
            new.write(f"#{file_key}\n")
        return cls(old, new)

    def _next(self) -> tuple[str, str, list[str]] | None:
        """The next (entry id, key, lines) of the old file; None at its end or at a line that does not check."""
        if self.old is None:
            return None
        try:
            raw = self.old.readline()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
        fields = text[:-1].split("\t") if text.endswith("\n") else []
        if len(fields) < 4 or _digest(fields[0], fields[1], "\t".join(fields[3:])) != fields[2] \
                or fields[0] <= self._old_last:
            self.old = None  # the rest is not trusted
            return None
        self._old_last = fields[0]
        return fields[0], fields[1], fields[3:]

    def take(self, entry_id: str, key: str) -> list[str] | None:
        """The lines kept for this entry when they were made under the same key, else None. Entries must be
        asked for in increasing id order; otherwise nothing more is copied."""
        if entry_id <= self._taken:
            self.old = self._entry = None
        self._taken = entry_id
        while self._entry is not None and self._entry[0] < entry_id:  # entries gone since
            self._entry = self._next()
        entry = self._entry
        if entry is None or entry[0] != entry_id:
            return None
        self._entry = self._next()
        if entry[1] != key:
            return None
        self.reused += 1
        return entry[2]

    def record(self, entry_id: str, key: str, lines: list[str]) -> None:
        """Keep an entry's lines (each without its newline) for the next build."""
        if self.new is None or entry_id <= self._recorded:
            return  # out of order: not kept (the file must stay sorted)
        if any("\t" in s or "\n" in s for s in (entry_id, key, *lines)) or not lines:
            return
        self._recorded = entry_id
        payload = "\t".join(lines)
        self.new.write(f"{entry_id}\t{key}\t{_digest(entry_id, key, payload)}\t{payload}\n")
