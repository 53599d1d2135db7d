"""The README's make commands, as a newcomer's shell runs them (make itself, from the repo root)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# A terminal's make is not a sub-make of `make test`: none of make's own variables.
_MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def make(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in _MAKE_VARIABLES}
    environment.update(env)
    return subprocess.run(
        ["make", *args],
        cwd=REPO_ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestInstall:
    """`make test` has just installed .venv, so this is any run after the first."""

    def test_a_second_make_run_runs_no_pip_only_the_server(self) -> None:
        # -n prints every command make would run, without running it.
        result = make("-n", "run")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "PYTHONPATH=backend .venv/bin/python -m app serve\n"

    def test_a_first_run_says_what_it_installs_and_shows_pips_progress(
        self, tmp_path: Path
    ) -> None:
        venv = tmp_path / "venv"  # no stamp there yet: a first run
        result = make("-n", "run", f"VENV={venv}")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert (
            f'echo "Installing dependencies into {venv} (first run only, and after '
            'requirements.txt changes; ~2 min)"'
        ) in lines
        [pip] = [line for line in lines if " -m pip " in line]
        assert pip == (
            f"{venv}/bin/python -m pip install --disable-pip-version-check --progress-bar on "
            "-r requirements.txt"
        )
        assert lines[-1] == f"PYTHONPATH=backend {venv}/bin/python -m app serve"


class TestToken:
    def test_without_user_it_refuses_rather_than_use_the_shells_user(self) -> None:
        result = make("-s", "token", USER="root")  # $USER from the shell, not the command line
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr.startswith(
            "make token needs a user name: make token USER=alice (ADMIN=1 adds the admin claim)\n"
        )

    def test_an_empty_user_is_refused_when_the_token_is_minted(self) -> None:
        result = make("-s", "token", "USER=")
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr.startswith(
            "Error: Invalid value for '--user': the user name is empty; name one, e.g. "
            "--user alice (see `python -m app token --help`)\n"
        )
