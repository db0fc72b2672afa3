"""Response cache keyed by the request fingerprint: SQLite in WAL mode, one committed row per reply.

Only successful, validated replies of deterministic calls are stored (the client decides; see
``client.run_requests``); failures are never stored, so a re-run asks again. Each reply is committed on
arrival: in WAL mode with ``synchronous=NORMAL`` a committed transaction survives the death of the
process (SIGKILL included; only a power loss can drop the last commits), so a killed run loses at most
the replies still in flight. No key and no base URL is ever stored: a row is the fingerprint, the
caller's request id and the reply (text, finish reason, usage).

Usage:
    with ResponseCache(out / "label_cache.sqlite") as cache:
        cache.get(fingerprint)            # CachedReply or None
        cache.put(fingerprint, "item-1", reply)
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class CachedReply:
    text: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    model: str | None = None  # the model name the API reported


class ResponseCache:
    """A fingerprint -> CachedReply store; safe to share between threads of one process."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        db = None
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS replies (fingerprint TEXT PRIMARY KEY, request_id TEXT NOT NULL,"
                       " reply TEXT NOT NULL)")
        except sqlite3.DatabaseError as exc:  # not an SQLite file, a folder, unreadable: name the file (an OSError,
            if db is not None:                # which the build reports as the stage's failure)
                db.close()
            raise OSError(f"{self.path}: not a usable response cache ({exc}); move it away to start a new one "
                          "(its cached replies would be asked and paid for again)") from exc
        self._db = db

    def get(self, fingerprint: str) -> CachedReply | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return CachedReply(**json.loads(row[0])) if row else None

    def get_many(self, fingerprints: list[str]) -> dict[str, CachedReply]:
        """Every cached reply among ``fingerprints`` (one query per 500)."""
        found: dict[str, CachedReply] = {}
        with self._lock:
            for i in range(0, len(fingerprints), 500):
                chunk = fingerprints[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for fp, reply in self._db.execute(
                        f"SELECT fingerprint, reply FROM replies WHERE fingerprint IN ({marks})", chunk):
                    found[fp] = CachedReply(**json.loads(reply))
        return found

    def put(self, fingerprint: str, request_id: str, reply: CachedReply) -> None:
        """Store and commit one reply (autocommit: durable against a process kill when this returns)."""
        blob = json.dumps(asdict(reply), sort_keys=True, ensure_ascii=False)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies (fingerprint, request_id, reply) VALUES (?, ?, ?)",
                             (fingerprint, request_id, blob))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
