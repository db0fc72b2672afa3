"""The validation's verdicts on sample lines kept between builds (issue 24: an update re-checked ~50,000 lines).

A sample line that checked clean needs no second check as long as nothing that decided it changed: the
line's text (its digest), the validator's code (stage_cache.code_fingerprint of dataset_builders.validate and
every project module it imports), the settings it checks against (cutoff_len, image_max_pixels,
image_min_pixels) and the size of each of its images. The first three make the file's key; the sizes are
stored per line and compared with what validate.ImageCache finds for the image now (a file whose inode,
byte count or modification time changed is opened again there). A line whose images no longer have the
stored sizes is checked in full.

File (``stages/export_verdicts.tsv``): a header line ``#<key>`` and one line per clean sample line, sorted:
``<digest hex>\\t<image tokens of its largest image>\\t<sample tokens>\\t<image rel>\\t<w>\\t<h>...``.
A missing file, another key, or any malformed line: nothing is known (the whole file is ignored, never
trusted in part), and every line is checked.

Usage:
    verdicts = Verdicts.load(path, config)        # {digest: Verdict}
    hit = verdicts.known.get(digest)               # then compare hit.images with the sizes found now
    verdicts.save(path)                            # the verdicts of this check's clean lines
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from dataset_builders.config import BuildConfig
from dataset_builders.stage_cache import StageKeys
from fracto_core.files import open_text_atomic

FORMAT = "export-verdicts-1"
# a whole file's lines after the header, checked in one match before any is trusted
_LINES = re.compile(r"(?:[0-9a-f]{32}\t[0-9]+\t[0-9]+(?:\t[^\t\n]+\t[0-9]+\t[0-9]+)*+\n)*+")


class Verdict(NamedTuple):
    """A clean line's statistics and the (rel, width, height) of each of its images when it was checked."""

    max_image_tokens: int
    sample_tokens: int
    images: tuple[tuple[str, int, int], ...]

    def text(self) -> str:
        return "\t".join([str(self.max_image_tokens), str(self.sample_tokens),
                          *(f"{rel}\t{w}\t{h}" for rel, w, h in self.images)])

    @classmethod
    def parse(cls, text: str) -> Verdict:
        fields = text.split("\t")
        return cls(int(fields[0]), int(fields[1]), tuple((fields[i], int(fields[i + 1]), int(fields[i + 2]))
                                                         for i in range(2, len(fields), 3)))


def verdicts_key(config: BuildConfig) -> str:
    settings = {"cutoff_len": config.cutoff_len, "image_max_pixels": config.image_max_pixels,
                "image_min_pixels": config.image_min_pixels, "format": FORMAT}
    return StageKeys(["dataset_builders.validate"], settings).base


class Verdicts:
    """known: the verdicts an earlier check saved (under this key), as their text (Verdict.text: parsed when
    used; 50,000 parsed verdicts held ~10 MiB more); found: this check's clean lines, text as well."""

    def __init__(self, key: str, known: dict[bytes, str] | None = None):
        self.key = key
        self.known = known or {}
        self.found: dict[bytes, str] = {}

    @classmethod
    def load(cls, path: Path, config: BuildConfig) -> Verdicts:
        key = verdicts_key(config)
        return cls(key, read_verdicts(path, key))

    def save(self, path: Path) -> None:
        with open_text_atomic(path, durable=False) as fh:
            fh.write(f"#{self.key}\n")
            for digest in sorted(self.found):
                fh.write(f"{digest.hex()}\t{self.found[digest]}\n")


def read_verdicts(path: Path, key: str) -> dict[bytes, str]:
    """Verdicts.save's file as {digest: verdict text}; {} when it is missing, of another key or malformed
    anywhere (cut short included: every line must end in a newline)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    header, _, body = text.partition("\n")
    if header != f"#{key}" or _LINES.fullmatch(body) is None:
        return {}
    return {bytes.fromhex(line[:32]): line[33:] for line in body.split("\n")[:-1]}  # not splitlines: \x85, \u2028 … may be in a path
