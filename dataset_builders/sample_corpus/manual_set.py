"""The manual rare-feature collection of the sample corpus: ``manual.csv`` (file,features,source,notes) and
its images, the way a curator would supply rare morphologies, with the features typed as synonyms.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from fracto_core.files import write_bytes_atomic, write_text_atomic
from fracto_core.vocabulary import canonicalize, sort_features

from .page_layout import encode_image
from .textures import KINDS, render
from .truth import TruthManualRow


# (texture, file format, the features cell as a curator would type it)
MANUAL_ROWS: tuple[tuple[str, str, str], ...] = (
    ("fish_eye", "png", "fisheye;non-metallic inclusion"),
    ("fish_eye", "jpeg", "fish-eye;inclusion"),
    ("fine_granular_area", "png", "FGA;inclusion"),
    ("fine_granular_area", "jpeg", "fine granular area;oxide inclusion"),
    ("ratchet_marks", "png", "ratchet marks"),
    ("creep_cavities", "jpeg", "wedge cracks;intergranular fracture"),
    ("unmelted_powder", "png", "unmelted powder"),
    ("crazing", "jpeg", "crazes"),
    ("crazing", "png", "crazing"),
    ("cleavage_tongues", "jpeg", "tongues;cleavage facets"),
)


def write_manual(dest: Path, seed: int = 0) -> list[TruthManualRow]:
    """Write ``dest/manual.csv`` (file,features,source,notes) and ``dest/images/`` rare-feature images.

    ``file`` is relative to ``dest``; features are ';'-separated canonical names or synonyms.
    """
    dest = Path(dest)
    rows: list[TruthManualRow] = []
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "features", "source", "notes"])
    for i, (kind, fmt, cell) in enumerate(MANUAL_ROWS):
        px = render(kind, 512, 384, np.random.default_rng([seed, 100_000 + i]))
        rel = f"images/manual_{i:02d}_{kind}.{'jpg' if fmt == 'jpeg' else 'png'}"
        write_bytes_atomic(dest / rel, encode_image(px, fmt, quality=92))
        writer.writerow([rel, cell, f"synthetic sample collection (seed {seed})",
                         f"synthetic {KINDS[kind].description}"])
        canon = [canonicalize(x) for x in cell.split(";")]
        rows.append(TruthManualRow(file=rel, features=sort_features([c for c in canon if c]), csv_features=cell,
                                   texture=kind))
    write_text_atomic(dest / "manual.csv", buf.getvalue())
    return rows
