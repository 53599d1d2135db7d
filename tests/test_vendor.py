"""The committed JavaScript libraries are exactly the pinned npm files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_vendored_files_match_their_pins() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/vendor.py", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
