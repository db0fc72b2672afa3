"""Usage: python -m dataset_builders.sample_corpus --out DIR --papers N [--seed S]"""

import sys

from dataset_builders.sample_corpus.generator import main

sys.exit(main())
