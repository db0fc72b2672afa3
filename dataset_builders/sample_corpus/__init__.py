"""The built-in demo and test data generator: paper-like PDFs with known ground truth.

Not part of the path of real data: the builder uses it only when no `--papers` folder is given, and the tests
use it to make corpora with known answers. Scores on these papers are self-consistency checks, not accuracy.

Usage:
    python -m dataset_builders.sample_corpus --out /tmp/corpus --papers 12
"""

from dataset_builders.sample_corpus.generator import (  # noqa: F401  (the generator's public interface)
    BAD_CAPTION,
    BAD_INPUT_REASONS,
    CorpusTruth,
    TruthCitation,
    TruthFigure,
    TruthImage,
    TruthManualRow,
    TruthPanel,
    TruthPaper,
    generate_corpus,
    write_bad_inputs,
    write_manual,
)
