"""The real server as a subprocess (`python -m app serve`), and tokens it accepts.

Each server gets its own DATA_DIR and port; it is started in a new session so that a crash drill
can kill the whole process group (uvicorn's supervisor and its workers) with one signal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from app.auth import TokenService
from app.config import load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "drill-secret-that-is-long-enough-for-hs256-0123456789abcdef"
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 20.0
# Never handed to the server: a drill must not depend on anything the developer exported.
_SCRUBBED_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API", "MODEL", "TEST_DATABASE_URL")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as a plain libpq URL for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class ServerError(RuntimeError):
    """The server did not come up (the message carries the tail of its log)."""


@dataclass
class ServerProcess:
    """One `python -m app serve` process tree, restartable on the same port and data."""

    database_url: str
    data_dir: Path
    workers: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def session_dir(self) -> Path:
        return self.data_dir / "sessions"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"server-{self.starts}.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env.update(
            {
                "PYTHONPATH": "backend",
                "DATABASE_URL": self.database_url,
                "DATA_DIR": str(self.data_dir),
                "AGENT_SESSION_DIR": str(self.session_dir),
                "PORT": str(self.port),
                "HOST": "127.0.0.1",
                "APP_ENV": "test",
                "SCHEDULER_ENABLED": "false",
                "AUTH_JWT_SECRET": JWT_SECRET,
                "MODEL_PROVIDER": "offline",
                "LOG_LEVEL": "WARNING",
                "AUTO_MIGRATE": "true",
                # Fair use is off unless a drill is about it (extra_env turns it on).
                "LIMIT_TURNS_PER_MINUTE": "0",
                "LIMIT_RUNNING_TURNS": "0",
                "LIMIT_DAILY_TOKENS": "0",
                "LIMIT_OPEN_STREAMS": "0",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> float:
        """Spawn the server and wait for `/health/ready` = 200; returns the seconds it took."""
        if self.running:
            raise ServerError("the server is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        began = time.monotonic()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--workers", str(self.workers)],
                cwd=REPO_ROOT,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = began + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0) as probe:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ServerError(
                        f"the server exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if probe.get("/health/ready").status_code == 200:
                        return time.monotonic() - began
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        self.kill()
        raise ServerError(f"not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM the process group, then SIGKILL it if it outlives `timeout`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        self._signal(signal.SIGKILL)  # any worker the supervisor left behind
        self._wait_group_gone()
        returncode, self.proc = self.proc.returncode, None  # never signal this group again
        return returncode

    def kill(self) -> None:
        """kill -9 the whole process tree: no shutdown code runs anywhere."""
        if self.proc is None:
            return
        self._signal(signal.SIGKILL)
        self.proc.wait(10)
        self._wait_group_gone()
        self.proc = None

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def _wait_group_gone(self, timeout: float = 10.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def report(record_property: Callable[[str, object], None], name: str, figures: str) -> None:
    """Show a drill's figures in the test output (-s / -rP) and in the JUnit properties."""
    print(figures)  # noqa: T201 - the figures are the drill's output
    record_property(name, figures)


def token_service() -> TokenService:
    """Signs tokens the drill servers accept (the same secret, HS256)."""
    return TokenService(load_settings(AUTH_JWT_SECRET=JWT_SECRET), JWT_SECRET)


def bearer(subject: str, *, ttl: timedelta | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_service().issue(subject, ttl=ttl)}"}
