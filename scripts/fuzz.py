"""`make fuzz`: schemathesis against the real server's OpenAPI schema, with a valid token.

Starts the service on a free loopback port with a scratch DATA_DIR (embedded PostgreSQL
unless DATABASE_URL/TEST_DATABASE_URL is set), runs schemathesis with a bounded number of
examples per operation, and fails on any 5xx or any response that violates the schema.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "fuzz-secret-that-is-long-enough-for-hs256-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("server did not become ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--max-examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", "50"))
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "backend"))
    from app.auth import TokenService
    from app.config import load_settings

    data_dir = Path(tempfile.mkdtemp(prefix="fuzz-", dir=ROOT / "data"))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": "backend",
        "DATA_DIR": str(data_dir),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "AUTH_JWT_SECRET": SECRET,
        "SCHEDULER_ENABLED": "false",
        "MODEL_PROVIDER": "offline",
        "LOG_LEVEL": "WARNING",
        "AUTO_MIGRATE": "true",
    }
    if not env.get("DATABASE_URL") and env.get("TEST_DATABASE_URL"):
        env["DATABASE_URL"] = env["TEST_DATABASE_URL"]
    token = TokenService.from_settings(
        load_settings(AUTH_JWT_SECRET=SECRET, DATA_DIR=data_dir)
    ).issue("fuzzer", admin=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"], cwd=ROOT, env=env, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        return subprocess.call(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{base}/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--max-examples",
                str(args.max_examples),
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--generation-deterministic",
                "--suppress-health-check",
                "all",
            ],
            cwd=ROOT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "scripts.fuzz_hooks", "PYTHONPATH": str(ROOT)},
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
