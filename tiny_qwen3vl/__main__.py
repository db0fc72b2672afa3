"""Build the tiny random Qwen3-VL fixture folder from the command line.

Usage: python -m tiny_qwen3vl --out /tmp/tiny-qwen3vl [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tiny_qwen3vl",
        description="Write a tiny, randomly initialised, seeded Qwen3-VL model folder (config, safetensors, "
                    "tokenizer, processor, chat template) that transformers' Auto classes and LlamaFactory "
                    "(template: qwen3_vl_nothink) load offline. For CPU tests and smoke runs only.",
    )
    parser.add_argument("--out", type=Path, required=True,
                        help="model folder to write (created; existing files are overwritten)")
    parser.add_argument("--seed", type=int, default=0,
                        help="torch seed for the random weights: same seed, identical weights (default 0)")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from tiny_qwen3vl.build import build_tiny_qwen3vl, count_parameters  # heavy import after --help

    start = time.perf_counter()
    model_dir = build_tiny_qwen3vl(args.out, seed=args.seed)
    print(model_dir)
    print(f"parameters: {count_parameters(model_dir):,} (seed {args.seed}, built in "
          f"{time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
