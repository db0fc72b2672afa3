"""Helpers shared by the tests and the API benchmarks: a free local port and the scripted server.

- `free_port`: a TCP port on 127.0.0.1 that nothing listens on (training.smoke's, the one definition).
- `teardown_abort`: whether a failed training log is torch's exit-time abort after a finished run.
- `ScriptedServer` / `Reply`: the deterministic OpenAI-compatible server (support/scripted_server.py), in a
  thread of the test process; `ScriptedServerProcess`: the same in its own process (benchmarks).

Usage (pytest puts tests/ on sys.path through conftest.py; benchmarks/ scripts insert it themselves):
    from support import Reply, ScriptedServer, free_port
"""

from support.scripted_server import LoggedRequest, Reply, ScriptedServer, ScriptedServerProcess
from training.smoke import free_port

TEARDOWN_ABORT = "terminate called without an active exception"


def teardown_abort(log: str, nodes: int) -> bool:
    """A multi-process CPU training run that failed only on the way out: "Training completed" logged once per
    node (transformers' Trainer logs on each node's main process), then a rank's C++ teardown aborted
    (std::terminate, SIGABRT) and torchrun failed the run. Seen twice in CI on 2026-12-02 (ZeRO-3 under
    torchrun on one node; on two Slurm nodes), both times after the ranks had saved; the ZeRO-3 tests
    repeat such a run once and fail on anything else."""
    return TEARDOWN_ABORT in log and log.count("Training completed") >= nodes


__all__ = ["LoggedRequest", "Reply", "ScriptedServer", "ScriptedServerProcess", "TEARDOWN_ABORT", "free_port",
           "teardown_abort"]
