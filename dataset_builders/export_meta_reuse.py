"""The export's meta lines kept between builds: an update re-made ~50,000 of them although ~95 % are unchanged.

A meta line (dataset/<name>_<split>_meta.jsonl, export.meta_record) is a function of its sample (id, split,
stage image, augmentation), its item (every field of items.jsonl's record) and the item's texts (captions
and citing excerpts of the panels showing its image: the dedup group's members and the panels files of its
papers), made by the export's code with the dataset's settings. ``sample_key`` hashes all of that (the panels
files by their bytes' sha256); the code and settings make the file's key (StageKeys over
``dataset_builders.export`` and what it imports, dataset_name, variants, pydantic's version).

File (``stages/export_meta_keys.tsv``): a header ``#<file key>``, then one line per meta line written, in the
order export wrote them (sample id order over every split): ``<sample id>\\t<split>\\t<key hex>\\t<line
digest hex>``. The last export's meta files are the cache: export reads them alongside the file (each
split's lines in their order) and copies a line when its sample comes with the same key and the old line
still has the recorded digest (blake2b of its bytes). Anything else -- a missing or garbled file, another
file key, a meta file edited, cut short or missing, samples out of order -- means the line is made again,
so a stale line is never copied (tested in tests/test_export_reuse.py).

Usage (export.write_samples):
    reuse = MetaReuse.open(paths, config, stack)          # before the new meta files replace the old ones
    line = reuse.take(sample_id, split, key)               # the old line, or None: make it
    reuse.record(sample_id, split, key, line)              # every line written, reused or made
"""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO, TextIO

from dataset_builders.config import BuildConfig
from dataset_builders.stage_cache import StageKeys, file_digest, library_versions
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import open_text_atomic

FORMAT = "export-meta-keys-1"
SPLITS = ("train", "val", "test")


def keys_path(paths: StagePaths) -> Path:
    return paths.stages / "export_meta_keys.tsv"


def meta_path(paths: StagePaths, config: BuildConfig, split: str) -> Path:
    return paths.dataset / f"{config.dataset_name}_{split}_meta.jsonl"


def file_key(config: BuildConfig) -> str:
    settings = {"dataset_name": config.dataset_name, "variants": config.variants, "format": FORMAT}
    # the records a meta line is made from are read (and items.jsonl written) by pydantic: its version is part of it
    return StageKeys(["dataset_builders.export"], settings | library_versions("pydantic")).base


def line_digest(line: bytes) -> str:
    return hashlib.blake2b(line, digest_size=16).hexdigest()


class ItemKeys:
    """The part of a sample's key that stands for its item: every field a meta line takes of it, and its texts:
    the dedup group's members (for a group of several panels) and the sha256 of every panels file of the
    item's papers (each file hashed once)."""

    def __init__(self, paths: StagePaths, groups: dict[str, tuple[list[str], list[str]]]):
        self.paths, self.groups = paths, groups
        self._papers: dict[str, str] = {}

    def __call__(self, fields: tuple, item_id: str, paper_ids: list[str]) -> str:
        members, papers = self.groups.get(item_id, ([item_id], paper_ids))
        digests = []
        for paper in papers:
            if paper not in self._papers:
                self._papers[paper] = file_digest(self.paths.panels / f"{paper}.json")
            digests.append(self._papers[paper])
        return "\x1f".join([*map(repr, fields), "\x1e", *members, "\x1e", *papers, "\x1e", *digests])


def sample_key(item_key: str, sample_id: str, split: str, source: str, augmentation: tuple[str, float] | None) -> str:
    """blake2b of everything a meta line is made from (but the code and settings: the file's key)."""
    text = "\x1d".join([item_key, sample_id, split, source, repr(augmentation)])
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class MetaReuse:
    """Reads the last export's keys file and meta files in step with the samples; writes this export's keys."""

    def __init__(self, key: str, old_keys: BinaryIO | None, old_meta: dict[str, BinaryIO], new_keys: TextIO):
        self.key, self.old_keys, self.old_meta, self.new_keys = key, old_keys, old_meta, new_keys
        self.reused = 0
        self._last = ""
        self._taken: tuple[str, str] | None = None  # (line, digest) of the last line take() gave
        self._recording = True
        self._entry: list[str] | None = self._next_entry()

    @classmethod
    def open(cls, paths: StagePaths, config: BuildConfig, stack: ExitStack, enabled: bool = True) -> MetaReuse:
        """Open the old files (before the new meta files replace them) and the new keys file (atomic)."""
        key = file_key(config)
        old_keys, old_meta = None, {}
        if enabled:
            try:
                old_keys = stack.enter_context(open(keys_path(paths), "rb"))  # bytes: a third of text's time
                if old_keys.readline() != f"#{key}\n".encode():
                    old_keys = None
                else:
                    for split in SPLITS:
                        old_meta[split] = stack.enter_context(
                            open(meta_path(paths, config, split), "rb"))
            except OSError:
                old_keys = None
        new_keys = stack.enter_context(open_text_atomic(keys_path(paths), durable=False))
        new_keys.write(f"#{key}\n")
        return cls(key, old_keys if len(old_meta) == len(SPLITS) else None, old_meta, new_keys)

    def _next_entry(self) -> list[str] | None:
        """The next (sample id, split, key, digest) of the old keys file; None at its end or at a bad line."""
        if self.old_keys is None:
            return None
        try:
            line = self.old_keys.readline().decode()
        except (OSError, UnicodeDecodeError):
            line = ""
        fields = line[:-1].split("\t") if line.endswith("\n") else []
        if len(fields) != 4 or fields[1] not in self.old_meta or len(fields[2]) != 32 or len(fields[3]) != 32:
            self.old_keys = None  # the rest is not trusted: every later line is made
            return None
        return fields

    def _old_line(self, split: str) -> bytes | None:
        try:
            line = self.old_meta[split].readline()
        except OSError:
            line = b""
        if not line.endswith(b"\n"):
            self.old_keys = None
            return None
        return line

    def take(self, sample_id: str, split: str, key: str) -> str | None:
        """The old meta line of this sample when it was made from the same inputs, else None. Samples must
        come in increasing id order (export's stream); otherwise nothing more is reused."""
        if sample_id <= self._last:
            self.old_keys = self._entry = None
        self._last = sample_id
        while self._entry is not None and self._entry[0] < sample_id:  # samples gone since: skip their lines
            self._old_line(self._entry[1])
            self._entry = self._next_entry()
        entry = self._entry
        if entry is None or entry[0] != sample_id:
            return None
        line = self._old_line(entry[1])
        self._entry = self._next_entry()
        if line is None or entry[1] != split or entry[2] != key or line_digest(line) != entry[3]:
            return None
        try:
            text = line.decode()
        except UnicodeDecodeError:
            return None
        self.reused += 1
        self._taken = (text, entry[3])
        return text

    def record(self, sample_id: str, split: str, key: str, line: str) -> None:
        """Note a meta line written (line with its newline)."""
        if "\t" in sample_id or "\n" in sample_id:
            self._recording = False  # not in this file's layout: this line and the later ones are made next time
        if self._recording:
            taken, self._taken = self._taken, None
            digest = taken[1] if taken is not None and taken[0] is line else line_digest(line.encode())
            self.new_keys.write(f"{sample_id}\t{split}\t{key}\t{digest}\n")
