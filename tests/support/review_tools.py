"""Real tools for the expert-review tests: Label Studio 1.23.2 and Playwright, each in its own cached venv.

Label Studio pins clash with LlamaFactory's (../shared/DESIGN.md §6), so it lives in
~/.cache/fractovlm/label-studio-venv (FRACTOVLM_CACHE overrides the folder), installed from PyPI once
(~100 s) and reused. The server starts offline on loopback (telemetry, version check and Sentry off); a busy
port moves it silently to the next one, so the real port is read from its log. Its process group is killed on
stop and, through PR_SET_PDEATHSIG, when the test process dies. Playwright drives Debian's chromium
(/usr/bin/chromium, apt package ``chromium``) from ~/.cache/fractovlm/playwright-venv.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

LS_VERSION = "1.23.2"
PLAYWRIGHT = "playwright==1.55.0"
CACHE = Path(os.environ.get("FRACTOVLM_CACHE", Path.home() / ".cache" / "fractovlm"))
CHROMIUM = Path("/usr/bin/chromium")
USER, PASSWORD, TOKEN = "expert@fractovlm.test", "review-pass-1", "fractovlm0test0token0123456789abcdef"
# Label Studio reads these unprefixed too (core.utils.params.get_env): a stray HOST or PORT would win.
CLEARED = ("USERNAME", "PASSWORD", "HOST", "PORT", "USER_TOKEN", "DATA_DIR", "DJANGO_DB", "DEBUG")


def _venv(name: str, requirement: str, timeout: float = 1800) -> Path:
    """A venv under CACHE holding ``requirement`` (installed once, under a lock); returns its bin folder."""
    venv = CACHE / name
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = venv / ".installed"
        if not (marker.exists() and marker.read_text().strip() == requirement):
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", requirement], check=True, timeout=timeout)
            marker.write_text(requirement + "\n")
    return venv / "bin"


def label_studio_bin() -> Path:
    return _venv("label-studio-venv", f"label-studio=={LS_VERSION}") / "label-studio"


def playwright_python() -> Path:
    return _venv("playwright-venv", PLAYWRIGHT) / "python"


def ensure_chromium() -> Path | None:
    """Debian's chromium, installed with apt when missing and possible; None when this machine cannot have it."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, env=env, capture_output=True, timeout=1200)
    return CHROMIUM if CHROMIUM.exists() else None


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data_dir: Path, document_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in CLEARED and not k.startswith(("LABEL_STUDIO_", "HEARTEX_"))}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "DJANGO_DB": "sqlite",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
        "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",  # without these two it phones home
        "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",  # label_studio.py defaults both to sentry.io
    })
    return env


@contextmanager
def label_studio(data_dir: Path, document_root: Path, log: Path, start_timeout: float = 240):
    """A running Label Studio: yields (base URL, token). Always killed (process group) on exit."""
    cmd = [str(label_studio_bin()), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(_free_port()),
           "--username", USER, "--password", PASSWORD, "--user-token", TOKEN, "--enable-legacy-api-token"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, env=server_env(data_dir, document_root), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
                                cwd=data_dir)
    try:
        url = _wait_ready(proc, log, start_timeout)
        yield url, TOKEN
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=20)


def _wait_ready(proc: subprocess.Popen, log: Path, timeout: float) -> str:
    """The URL once /health answers; the port comes from Django's "Starting development server at" line."""
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"label-studio exited with {proc.returncode}:\n{tail}")
        if url is None:
            m = re.search(r"Starting development server at (http://127\.0\.0\.1:\d+)/", log.read_text(errors="replace"))
            url = m[1] if m else None
        if url is not None:
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as resp:
                    if resp.status == 200:
                        return url
            except OSError:
                pass
        time.sleep(1)
    raise RuntimeError(f"label-studio not ready after {timeout:.0f}s:\n{log.read_text(errors='replace')[-3000:]}")


def run_browser_script(script: str, args: dict, timeout: float = 180) -> dict:
    """Run a Playwright script (reads json ``ARGS``, prints one JSON line) in the Playwright venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYWRIGHT_")}
    env["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"  # we use Debian's chromium, never a download
    proc = subprocess.run([str(playwright_python()), "-c", script, json.dumps(args)], env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=_die_with_parent)
    if proc.returncode != 0:
        raise RuntimeError(f"browser script failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fresh_data_dir(dest: Path, scratch: Path) -> Path:
    """A Label Studio data folder with the database already migrated: the cold start (~45 s of migrations)
    happens once into a cached template, later tests copy it (restart ~5 s)."""
    template = CACHE / f"label-studio-data-{LS_VERSION}"
    CACHE.mkdir(parents=True, exist_ok=True)  # a fresh machine has no cache yet (CI, 2026-12-02)
    with open(CACHE / "label-studio-data.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (template / ".migrated").exists():
            shutil.rmtree(template, ignore_errors=True)
            template.mkdir(parents=True)
            scratch.mkdir(parents=True, exist_ok=True)
            with label_studio(template, scratch, scratch / "label_studio_first_start.log"):
                pass
            (template / ".migrated").write_text(LS_VERSION + "\n")
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns(".migrated"))
    return dest
