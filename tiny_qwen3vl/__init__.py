"""A tiny, randomly initialised, seeded Qwen3-VL model folder for CPU tests and smoke runs.

Usage:
    python -m tiny_qwen3vl --out /tmp/tiny-qwen3vl --seed 0
"""

from tiny_qwen3vl.build import build_tiny_qwen3vl, count_parameters

__all__ = ["build_tiny_qwen3vl", "count_parameters"]
