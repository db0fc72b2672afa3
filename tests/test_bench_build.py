"""The build benchmark's file-system probe (benchmarks/bench_build.py): it measures file creation in the
folder it is given and does not wait on a file system that is fast enough."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

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


def test_real_size_draw_follows_real_papers_quartiles():
    from benchmarks import heavy_corpus

    q1, median, q3 = heavy_corpus.real_size_summary(4000, seed=3)
    # DESIGN 6b: 516 embedded images of 27 real PDFs, quartiles 0.10 / 0.25 / 0.51 Mpx
    assert 0.085 <= q1 <= 0.115 and 0.22 <= median <= 0.28 and 0.45 <= q3 <= 0.58


def test_real_size_papers_keep_the_layout_with_smaller_images(tmp_path):
    import pymupdf

    from benchmarks import heavy_corpus

    def image_sizes(data: bytes) -> list[tuple[int, int]]:
        with pymupdf.open(stream=data) as doc:
            return [(im[2], im[3]) for page in doc for im in page.get_images()]

    heavy = image_sizes(heavy_corpus.make_paper(4, 1))
    real = [image_sizes(heavy_corpus.make_paper(i, 1, "real")) for i in range(6)]
    assert heavy == [heavy_corpus.COMPOSITE_PX, *[heavy_corpus.TRIPLE_PX] * 3]
    assert all(len(sizes) == 4 and min(min(s) for s in sizes) >= 96 for sizes in real)
    mpx = sorted(w * h / 1e6 for sizes in real for w, h in sizes)
    assert mpx[len(mpx) // 2] < 0.6 < sum(w * h for w, h in heavy) / 4e6  # smaller than the heavy corpus'
    with pytest.raises(ValueError, match="sizes"):
        heavy_corpus.generate(tmp_path, 1, 1, sizes="huge")


def test_a_failed_build_names_its_reason(tmp_path):
    """The child's stderr (the reason) reaches the user, not only 'returned non-zero exit status 1'."""
    tree = tmp_path / "tree"
    (tree / "dataset_builders").mkdir(parents=True)
    (tree / "dataset_builders" / "__init__.py").write_text('raise RuntimeError("the reason: boom")\n')
    from benchmarks import bench_compare

    with pytest.raises(SystemExit) as failed:
        bench_compare.build_cpu(tree, tmp_path / "papers", tmp_path / "out")
    assert "the reason: boom" in str(failed.value) and str(tree) in str(failed.value)
    with pytest.raises(SystemExit) as failed:
        bench_build.time_builder(tmp_path / "no-such-papers", tmp_path / "out2", 1, settle=0.0)
    assert "no-such-papers" in str(failed.value) and "exit 1" in str(failed.value)


def test_the_cleanup_spares_the_folders_of_a_benchmark_still_running(tmp_path):
    """Two benchmarks on the shared machine: the one ending first removed the other's builds mid-run
    (bench_build and bench_scale remove their --work's run-* folders at the end)."""
    import os
    import subprocess
    import sys

    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        alive = tmp_path / f"run-20260101-000000-{running.pid}"
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        interrupted = tmp_path / f"run-20260101-000000-{int(dead.stdout)}"
        own = tmp_path / f"run-20260101-000000-{os.getpid()}"
        for folder in (alive, interrupted, own):
            (folder / "build").mkdir(parents=True)
        bench_build.remove_leftovers(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == [alive.name]  # the interrupted one's and its own: removed
    finally:
        running.kill()
        running.wait()


@pytest.mark.parametrize("script, flags, named", [
    ("bench_labeling.py", ["--concurrency", "0"], "--concurrency"),
    ("bench_eval.py", ["--images", "0"], "--images"),
    ("bench_build.py", ["--corpus", "sample", "--papers", "2", "--repeats", "0"], "--repeats"),
    ("bench_compare.py", ["--tree", "a=.", "--corpus", "sample", "--papers", "2", "--rounds", "0"], "--rounds"),
    ("bench_stages_alone.py", ["--tree", "a=.", "--build", ".", "--rounds", "0"], "--rounds"),
    ("bench_export_hf.py", ["--build", ".", "--repeats", "0"], "--repeats"),
])
def test_a_count_flag_of_zero_is_a_usage_error_naming_it(tmp_path, script, flags, named):
    """Not a ZeroDivisionError / min() of no runs / median of no data traceback, some after building a corpus."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    if script in ("bench_stages_alone.py", "bench_export_hf.py"):
        (tmp_path / "stages").mkdir()
        flags = [f if f != "." else str(tmp_path) for f in flags]
    done = subprocess.run([sys.executable, str(repo / "benchmarks" / script), *flags, "--work", str(tmp_path / "w")]
                          if script.startswith(("bench_build", "bench_compare", "bench_stages", "bench_export"))
                          else [sys.executable, str(repo / "benchmarks" / script), *flags],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and named in done.stderr and "Traceback" not in done.stderr, done.stderr[-600:]


def test_a_tree_lacking_a_module_is_refused_not_completed_from_the_editable_install(tmp_path):
    """The venv's editable install maps dataset_builders to the main checkout: a submodule a compared tree lacks
    was imported from there, and the 'before' build silently ran (partly) on other code."""
    from benchmarks import bench_compare
    from dataset_builders import sample_corpus

    sample_corpus.generate_corpus(tmp_path / "corpus", n_papers=1, seed=1)
    real = Path(__file__).resolve().parents[1] / "dataset_builders" / "__init__.py"
    tree = tmp_path / "tree"
    (tree / "dataset_builders").mkdir(parents=True)
    (tree / "dataset_builders" / "__init__.py").write_bytes(real.read_bytes())  # the package, none of its modules
    with pytest.raises(SystemExit) as refused:
        bench_compare.build_cpu(tree, tmp_path / "corpus" / "papers", tmp_path / "out")
    assert "outside the tree" in str(refused.value) and "dataset_builders.build" in str(refused.value)
