"""Run the README's API walkthrough against a real server, exactly as a newcomer pastes it.

    .venv/bin/python scripts/readme_walkthrough.py             # starts `make run` for itself
    .venv/bin/python scripts/readme_walkthrough.py --api URL   # a server you started

The shell blocks that README.md marks with `<!-- walkthrough -->` (ended by
`<!-- /walkthrough -->`) are joined in order and run by bash, from the repo root, with
`set -euo pipefail`, and curl is made to fail on any HTTP error status. The run fails on a
non-zero exit, on anything written to stderr, and when a line it must print is missing.

Without --api it starts the server with `make run` itself (its own DATA_DIR, a free port,
the embedded PostgreSQL) and stops it afterwards. With --api, the walkthrough's `make token`
must sign with the server's secret: run it with the same DATA_DIR (or .env) as the server.

CI runs this script (`.ci/run`); `make test` runs the same blocks against a server it starts
(tests/cli/test_against_a_server.py), so the README cannot drift from what works.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
START_MARKER = "<!-- walkthrough -->"
END_MARKER = "<!-- /walkthrough -->"
READY_TIMEOUT_SECONDS = 180.0  # the first start of the embedded PostgreSQL runs initdb
RUN_TIMEOUT_SECONDS = 300.0
# Make's own variables would make the walkthrough's `make -s token` a sub-make of whatever
# started this (it would print "Entering directory" into the token); a terminal has none.
_NOT_IN_A_TERMINAL = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")

# Run before the blocks. As pasted, a failed request prints its error body and the paste goes
# on; here the run stops there and names the command.
PRELUDE = """\
set -euo pipefail
trap 'echo "walkthrough failed (exit $?) at: $BASH_COMMAND" >&2' ERR
curl() { command curl --fail-with-body "$@"; }
"""

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# Lines the output must contain, in this order (each a regular expression for one line).
EXPECTED_LINES = (
    rf"^thread {_UUID}$",  # the id was captured
    r'"title":"Errands"',  # renamed
    r"^event: user_message$",  # the reply streamed...
    r'^data: \{"call_id":"call_\w+","name":"add_task","arguments":"\{\\"title\\":\\"buy milk\\"\}"\}$',
    r'^data: \{"turn_id":"[0-9a-f-]{36}","status":"completed"\}$',  # ...to its end
    r'"assistant_message":\{.*"content":"Your tasks:\\n.*\[ \] buy milk.*"error":null\}$',
    r'"title":"call mom","notes":"","done":true',
    r"^204$",  # the task deleted
    r"^204$",  # the thread deleted
    r'"subject":"alice"',
    r'^\{"status":"ok"\}$',
    r'^\{"status":"ok","components":',
    r'"deleted_file":true',  # the admin block: memory cleared...
    rf'^\{{"thread_id":"{_UUID}","items":[1-9]',  # ...and rebuilt from the log
    r'^\{"ok":true,',  # verify
    r'"job":"sweep-orphans","trigger":"admin","status":"succeeded"',
)


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    problems: list[str]


def walkthrough_script(readme: Path = README) -> str:
    """The marked shell blocks of `readme`, in order (an error if there are none)."""
    text = readme.read_text()
    blocks = re.findall(
        re.escape(START_MARKER) + r"\s*```sh\n(.*?)```\s*" + re.escape(END_MARKER), text, re.S
    )
    if not blocks:
        raise SystemExit(f"No {START_MARKER} ... {END_MARKER} sh block in {readme}")
    return "\n".join(blocks)


def run_walkthrough(api: str, env: Mapping[str, str], readme: Path = README) -> Outcome:
    """Run the walkthrough with bash against `api`; `env` must let `make token` sign for it."""
    environment = {k: v for k, v in env.items() if k not in _NOT_IN_A_TERMINAL}
    environment["API"] = api
    result = subprocess.run(
        ["bash", "-c", PRELUDE + walkthrough_script(readme)],
        cwd=REPO_ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    problems = []
    if result.returncode != 0:
        problems.append(f"exit code {result.returncode}")
    if result.stderr:
        problems.append(f"wrote to stderr: {result.stderr.strip()}")
    problems += _missing_lines(result.stdout)
    return Outcome(result.returncode, result.stdout, result.stderr, problems)


def _missing_lines(stdout: str) -> list[str]:
    lines = iter(stdout.splitlines())
    for pattern in EXPECTED_LINES:
        if not any(re.search(pattern, line) for line in lines):
            return [f"no line matching {pattern!r} (in order) in the output"]
    return []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def make_run(data_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`make run` on a free port with `data_dir`; yields its URL and the environment it has."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in _NOT_IN_A_TERMINAL}
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "DATA_DIR": str(data_dir)})
    api = f"http://127.0.0.1:{port}"
    log_path = data_dir / "make-run.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            ["make", "run"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(api, server, log_path)
        yield api, env
    finally:
        _stop_group(server)


def _stop_group(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM make and the server (Ctrl-C's effect), and wait until every process is gone:
    the server stops the embedded PostgreSQL on its way out."""
    os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        server.poll()
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(10)


def _wait_ready(api: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"`make run` exited with {server.returncode}:\n{log_path.read_text()}")
        try:
            with urlopen(f"{api}/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"`make run` was not ready within {READY_TIMEOUT_SECONDS:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", help="URL of a running server (default: start `make run`)")
    args = parser.parse_args()
    if args.api:
        outcome = run_walkthrough(args.api, os.environ)
    else:
        with (
            tempfile.TemporaryDirectory(prefix="walkthrough-") as data_dir,
            make_run(Path(data_dir)) as (api, env),
        ):
            outcome = run_walkthrough(api, env)
    sys.stdout.write(outcome.stdout)
    sys.stderr.write(outcome.stderr)
    for problem in outcome.problems:
        sys.stderr.write(f"README walkthrough: {problem}\n")
    if outcome.problems:
        return 1
    sys.stderr.write("README walkthrough: every command ran and printed what it should.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
