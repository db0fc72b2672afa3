"""A build's output files by their bytes, for tests that compare two builds of the same inputs file for file.

Usage:
    from support.build_outputs import all_outputs
    assert all_outputs(resumed_out) == all_outputs(reference_out)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# Per-run bookkeeping, not compared: stage results hold resumed/made counts, build_config.json the output path,
# and the file-identity caches (mine_ids.tsv, export_image_sizes.tsv, and the resumed records' summaries
# mine_resumed.tsv and panels_resumed.tsv) are keyed on inode numbers and mtimes, which differ from folder to
# folder.
NOT_COMPARED = ("stages/results/", "build_config.json", "stages/mine_ids.tsv", "stages/export_image_sizes.tsv",
                "stages/mine_resumed.tsv", "stages/panels_resumed.tsv")


def all_outputs(out: Path) -> dict[str, str]:
    """sha256 of every file under out but NOT_COMPARED, by its path relative to out."""
    return {f.relative_to(out).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(out.rglob("*"))
            if f.is_file() and not f.relative_to(out).as_posix().startswith(NOT_COMPARED)}
