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

from pathlib import Path
from typing import NamedTuple

from dataset_builders.config import BuildConfig
from dataset_builders.stage_cache import StageKeys
from fracto_core.files import open_text_atomic

FORMAT = "export-verdicts-1"


class Verdict(NamedTuple):
    """A clean line's statistics and the (rel, width, height) of each of its images when it was checked."""

    max_image_tokens: int
    sample_tokens: int
    images: tuple[tuple[str, int, int], ...]


def verdicts_key(config: BuildConfig) -> str:
    settings = {"cutoff_len": config.cutoff_len, "image_max_pixels": config.image_max_pixels,
                "image_min_pixels": config.image_min_pixels, "format": FORMAT}
    return StageKeys(["dataset_builders.validate"], settings).base


class Verdicts:
    """known: the verdicts an earlier check saved (under this key); found: this check's clean lines."""

    def __init__(self, key: str, known: dict[bytes, Verdict] | None = None):
        self.key = key
        self.known = known or {}
        self.found: dict[bytes, Verdict] = {}

    @classmethod
    def load(cls, path: Path, config: BuildConfig) -> Verdicts:
        key = verdicts_key(config)
        return cls(key, read_verdicts(path, key))

    def save(self, path: Path) -> None:
        with open_text_atomic(path, durable=False) as fh:
            fh.write(f"#{self.key}\n")
            for digest in sorted(self.found):
                v = self.found[digest]
                fields = [digest.hex(), str(v.max_image_tokens), str(v.sample_tokens)]
                for rel, w, h in v.images:
                    fields += [rel, str(w), str(h)]
                fh.write("\t".join(fields) + "\n")


def read_verdicts(path: Path, key: str) -> dict[bytes, Verdict]:
    """Verdicts.save's file as {digest: Verdict}; {} when it is missing, of another key or malformed anywhere."""
    known: dict[bytes, Verdict] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.readline() != f"#{key}\n":
                return {}
            for line in fh:
                if not line.endswith("\n"):
                    return {}  # cut short
                fields = line[:-1].split("\t")
                digest = bytes.fromhex(fields[0])  # int() and fromhex() raise ValueError on a garbled field
                if len(fields) == 6:  # one image: most lines
                    images: tuple[tuple[str, int, int], ...] = ((fields[3], int(fields[4]), int(fields[5])),)
                elif len(fields) >= 3 and not (len(fields) - 3) % 3:
                    images = tuple((fields[i], int(fields[i + 1]), int(fields[i + 2]))
                                   for i in range(3, len(fields), 3))
                else:
                    return {}
                if len(digest) != 16:
                    return {}
                known[digest] = Verdict(int(fields[1]), int(fields[2]), images)
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return known
