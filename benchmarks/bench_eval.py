"""Benchmark the evaluation harness: 200 benchmark images against the scripted local server (200 ms per reply).

Usage:
    python benchmarks/bench_eval.py [--images 200] [--latency 0.2] [--concurrency 16]

Runs ``eval.run.run_eval`` (benchmark load + validation, request building, the shared API client, the
per-sample log flushed per record, the run card) against tests/support/scripted_server.py in its own
process and prints the wall time of the request phase and of the whole run against the ideal
ceil(200 / 16) = 13 rounds x 0.2 s = 2.6 s (target: within 15 %; with at most 16 requests in flight the 200
replies need 13 rounds of 0.2 s, not 12.5: the figure before 2026-12-07 was 200 x 0.2 s / 16 = 2.5 s, also
printed), the harness CPU time per sample (process CPU time / samples), the same number of requests from a bare aiohttp client (no SDK, no harness: the floor the server
and the machine allow, measured in the same run), and, separately, the single-model report (bootstrap + plots) that a run writes at the end. The one-time `import openai`
is paid before timing (it is a per-process cost, reported on its own line).
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_labeling import make_images, parse_args  # noqa: E402  (same images and flags)

from eval.report import build_report  # noqa: E402
from eval.run import RunConfig, run_eval  # noqa: E402
from support import ScriptedServerProcess  # noqa: E402

REPLY = '{"features": ["equiaxed dimples", "cleavage facets"]}'


async def bare_client(base_url: str, n: int, concurrency: int) -> float:
    """Seconds for n small chat requests, `concurrency` workers on one aiohttp session (the floor)."""
    import aiohttp

    body = json.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "floor"}]}).encode()
    todo = list(range(n))
    async with aiohttp.ClientSession() as session:
        async def worker() -> None:
            while todo:
                todo.pop()
                async with session.post(f"{base_url}/chat/completions", data=body,
                                        headers={"Content-Type": "application/json"}) as response:
                    json.loads(await response.read())

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0


def main() -> int:
    ns = parse_args(__doc__, images=200)
    rounds = math.ceil(ns.images / ns.concurrency)  # at most `concurrency` in flight: whole rounds of replies
    ideal = rounds * ns.latency
    flat = ns.images * ns.latency / ns.concurrency  # the figure used before (12.5 rounds)
    t0 = time.perf_counter()
    import openai  # noqa: F401  one-time import cost, paid once per process: reported, not benchmarked
    from openai.types.chat import ChatCompletion  # noqa: F401  (imported by the client on its first request)

    t_import = time.perf_counter() - t0
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, ScriptedServerProcess(ns.latency, REPLY) as server:
        tmp = Path(tmp)
        images = make_images(tmp, ns.images)
        with open(tmp / "labels.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "features"])
            for i, p in enumerate(images):
                writer.writerow([p.name, "equiaxed dimples" if i % 2 else "cleavage facets;river patterns"])
        config = RunConfig(model="bench-model", benchmark=tmp / "labels.csv", out=tmp / "run",
                           base_url=server.base_url, concurrency=ns.concurrency, timeout_s=30, progress=False,
                           report=False)
        t0, c0 = time.perf_counter(), time.process_time()
        outcome = run_eval(config)
        t_run, cpu_run = time.perf_counter() - t0, time.process_time() - c0
        stats = server.stats()
        assert outcome.card.n_samples == ns.images and outcome.n_failed == 0, outcome
        assert stats["count"] == ns.images and stats["max_in_flight"] <= ns.concurrency, stats
        t_floor = asyncio.run(bare_client(server.base_url, ns.images, ns.concurrency))
        t0, c0 = time.perf_counter(), time.process_time()
        build_report([tmp / "run"], out=tmp / "run" / "report")
        t_report, cpu_report = time.perf_counter() - t0, time.process_time() - c0

    phase = outcome.request_phase_s
    print(f"eval harness: {ns.images} images, server latency {ns.latency * 1000:.0f} ms, concurrency {ns.concurrency} "
          f"(max in flight seen by the server: {stats['max_in_flight']}); load average {load:.2f} on "
          f"{os.cpu_count()} CPUs")
    print(f"ideal: ceil({ns.images} / {ns.concurrency}) = {rounds} rounds x {ns.latency} s = {ideal:.2f} s "
          f"(the old figure {ns.images} x {ns.latency} s / {ns.concurrency} = {flat:.2f} s)")
    print(f"request phase (run_requests, per-sample log): {phase:.2f} s = {phase / ideal:.2f}x ideal "
          f"({(phase / ideal - 1) * 100:+.1f} %; target within 15 %: {'PASS' if phase <= ideal * 1.15 else 'FAIL'}; "
          f"{(phase / flat - 1) * 100:+.1f} % over the old figure)")
    print(f"whole run_eval (benchmark load + hashing, requests, run card): {t_run:.2f} s = {t_run / ideal:.2f}x ideal")
    print(f"floor: a bare aiohttp client, {ns.images} requests, {ns.concurrency} in flight, same server: {t_floor:.2f} s "
          f"= {t_floor / ideal:.2f}x ideal ({(t_floor / ideal - 1) * 100:+.1f} %); the harness adds "
          f"{(phase - t_floor) * 1000:+.0f} ms")
    print(f"harness CPU time per sample: {cpu_run / ns.images * 1000:.2f} ms ({cpu_run:.2f} s CPU for "
          f"{ns.images} samples)")
    print(f"single-model report (2000 bootstrap resamples, plots): {t_report:.2f} s wall, {cpu_report:.2f} s CPU")
    print(f"one-time `import openai`: {t_import:.2f} s")
    return 0 if phase <= ideal * 1.15 else 1


if __name__ == "__main__":
    sys.exit(main())
