"""The built-in demo and test data generator: paper-like PDFs with known ground truth.

Not real data and not part of the path of real data: the builder uses it only when no `--papers` folder is
given, and the tests use it to make corpora with known answers. Scores on these papers are self-consistency
checks, not accuracy.

Modules: ``generator`` (generate_corpus, the CLI), ``papers`` (one paper: text, layout, drawing), ``figures``
(figure plans and captions), ``figure_drawing``, ``blocks`` (page placement), ``page_layout`` (geometry,
fonts, text writing), ``text`` (words, phrases, negations), ``truth`` (ground-truth records), ``manual_set``
(rare-feature collection), ``bad_inputs`` (truncated, encrypted, bomb, ... files), ``textures`` (texture
kinds and ``render``) with ``texture_blocks`` (noise, cells, shading) and ``non_fracture`` (micrograph,
test-rig photo).

Usage:
    python -m dataset_builders.sample_corpus --out /tmp/corpus --papers 12
"""

from .bad_inputs import BAD_CAPTION, BAD_INPUT_REASONS, write_bad_inputs
from .generator import generate_corpus
from .manual_set import write_manual
from .truth import (CorpusTruth, TruthCitation, TruthFigure, TruthImage, TruthManualRow, TruthPanel,
                    TruthPaper)

__all__ = ["BAD_CAPTION", "BAD_INPUT_REASONS", "CorpusTruth", "TruthCitation", "TruthFigure", "TruthImage",
           "TruthManualRow", "TruthPanel", "TruthPaper", "generate_corpus", "write_bad_inputs", "write_manual"]
