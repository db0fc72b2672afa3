"""A Label Studio data folder with two users (the expert benchmark's two annotators), cached like review_tools'.

The second user is made by Label Studio's own ``label-studio init --username ... --user-token ...`` (server.py
_create_user of 1.23.2: creates the user, sets its API token, adds it to the organisation) on a copy of the
migrated template. That takes ~30-90 s once per machine; later tests copy the cached folder.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

from support.review_tools import CACHE, LS_VERSION, fresh_data_dir, label_studio_bin, server_env

SECOND_USER, SECOND_PASSWORD, SECOND_TOKEN = ("second@fractovlm.test", "review-pass-2",
                                              "fractovlm0second0token0123456789ab")


def two_user_data_dir(dest: Path, scratch: Path) -> Path:
    """A migrated data folder holding the default test user and SECOND_USER (token SECOND_TOKEN)."""
    template = CACHE / f"label-studio-data-{LS_VERSION}-two-users"
    with open(CACHE / "label-studio-data-two-users.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (template / ".ready").exists():
            shutil.rmtree(template, ignore_errors=True)
            base = fresh_data_dir(scratch / "two_user_base", scratch)
            cmd = [str(label_studio_bin()), "init", "--username", SECOND_USER, "--password", SECOND_PASSWORD,
                   "--user-token", SECOND_TOKEN, "--enable-legacy-api-token", "-q"]
            done = subprocess.run(cmd, env=server_env(base, scratch), cwd=base, capture_output=True, text=True,
                                  timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"label-studio init failed ({done.returncode}):\n{done.stderr[-3000:]}")
            shutil.copytree(base, template)
            (template / ".ready").write_text(LS_VERSION + "\n")
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns(".ready"))
    return dest
