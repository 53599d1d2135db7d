"""`python -m app ...` as a subprocess from the repo root, as a newcomer runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Never handed to the command: what it uses is what the test passes, not the developer's shell.
_SCRUBBED_ENV = ("DATABASE_URL", "TEST_DATABASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")


def run_app(
    *args: str, data_dir: Path, timeout: float = 120, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with DATA_DIR=`data_dir` and `env` on top of the test environment."""
    environment = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    environment.update({"PYTHONPATH": "backend", "DATA_DIR": str(data_dir), **env})
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO_ROOT,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
