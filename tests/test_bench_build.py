"""The build benchmark's file-system probe (benchmarks/bench_build.py): it measures file creation in the
folder it is given and does not wait on a file system that is fast enough."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

# a script, not an installed package: loaded from its file (it puts the repository on sys.path itself)
_SPEC = importlib.util.spec_from_file_location(
    "bench_build", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_build.py")
bench_build = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_build)


def test_creation_probe_creates_its_files_and_times_them(tmp_path):
    us = bench_build.creation_probe(tmp_path / "probe", n=25)
    assert sorted(p.name for p in (tmp_path / "probe").iterdir()) == sorted(f"probe-{i}" for i in range(25))
    assert 0 < us < 1e6


def test_wait_for_file_system_does_not_wait_when_creation_is_fast_enough(tmp_path):
    t0 = time.perf_counter()
    probe = bench_build.wait_for_file_system(tmp_path, healthy_us=1e9)
    assert time.perf_counter() - t0 < 10  # one probe, no 30 s wait
    assert probe > 0
    assert [p.name for p in tmp_path.iterdir()] == ["probe-0"]


def test_wait_for_file_system_stops_at_its_time_limit(tmp_path):
    t0 = time.perf_counter()
    bench_build.wait_for_file_system(tmp_path, healthy_us=0.0, limit_s=0.0)  # never healthy, no time to wait
    assert time.perf_counter() - t0 < 10
    assert [p.name for p in tmp_path.iterdir()] == ["probe-0"]
