"""CPU a build start pays for its code fingerprints (dataset_builders.stage_cache.pin_code), in fresh processes.

Usage:
    python benchmarks/bench_code_keys.py --repeat 5

Each measurement is a new Python process (the parses are kept per process) that first imports what a build
imports (dataset_builders.build), then times, in its own CPU seconds: the fingerprints of every stage with no
digest file and an empty shared folder (every project file parsed: the cost of every build start before the
digest file, and of a build into a fresh output before the shared folder), then the same with the digest file a
first run wrote (the files' bytes read and hashed only), then with no digest file of its own (a fresh output)
but the shared folder the first run filled (stage_cache.shared_digest_folder; one small file read per module).
Prints the median of each and their ratios. CPU seconds, not wall time: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys
from pathlib import Path
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
import dataset_builders.build as build
from dataset_builders import stage_cache
c0 = cpu()
shared = Path(sys.argv[2]) if sys.argv[2] else None
parsed = stage_cache.pin_code(build.STAGE_MODULES.values(), build.STAGE_MODULES.values(), Path(sys.argv[1]), shared)
keys = [stage_cache.code_fingerprint(m) for m in build.STAGE_MODULES.values()]
stage_cache.save_digests(Path(sys.argv[1]), build.STAGE_MODULES.values())
print(json.dumps({"cpu": cpu() - c0, "parsed": parsed, "keys": keys}))
"""


def run_child(digest_file: Path, shared: Path | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(digest_file), str(shared or "")], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    ns = parser.parse_args()
    cold, warm, shared = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(ns.repeat):
            digest_file, folder = Path(tmp) / f"digests{i}.tsv", Path(tmp) / f"shared{i}"
            first, second = run_child(digest_file, folder), run_child(digest_file)
            third = run_child(Path(tmp) / f"fresh{i}.tsv", folder)
            assert first["keys"] == second["keys"] == third["keys"] and second["parsed"] == third["parsed"] == 0, \
                (first, second, third)
            cold.append(first["cpu"])
            warm.append(second["cpu"])
            shared.append(third["cpu"])
    c, w, s = statistics.median(cold), statistics.median(warm), statistics.median(shared)
    print(f"no digest file:   {c:.3f} s CPU (median of {ns.repeat}; {first['parsed']} files parsed)")
    print(f"with digest file: {w:.3f} s CPU (median of {ns.repeat}; 0 files parsed)")
    print(f"fresh output, shared folder: {s:.3f} s CPU (median of {ns.repeat}; 0 files parsed)")
    print(f"ratios: {c / w:.1f}x (digest file), {c / s:.1f}x (shared folder); the keys are the same")

if __name__ == "__main__":
    main()
