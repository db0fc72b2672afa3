"""Helpers shared by the tests and the API benchmarks: a free local port and the scripted server.

- `free_port`: a TCP port on 127.0.0.1 that nothing listens on (training.smoke's, the one definition).
- `ScriptedServer` / `Reply`: the deterministic OpenAI-compatible server (support/scripted_server.py), in a
  thread of the test process; `ScriptedServerProcess`: the same in its own process (benchmarks).

Usage (pytest puts tests/ on sys.path through conftest.py; benchmarks/ scripts insert it themselves):
    from support import Reply, ScriptedServer, free_port
"""

from support.scripted_server import LoggedRequest, Reply, ScriptedServer, ScriptedServerProcess
from training.smoke import free_port

__all__ = ["LoggedRequest", "Reply", "ScriptedServer", "ScriptedServerProcess", "free_port"]
