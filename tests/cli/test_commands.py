"""The operators' CLI, run as a newcomer would: a subprocess against the real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.factories import age_thread, thread_row, thread_with_turns

REPO_ROOT = Path(__file__).resolve().parents[2]


def cli(settings, *args: str, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": "backend",
        "DATABASE_URL": settings.DATABASE_URL,
        "DATA_DIR": str(settings.DATA_DIR),
        "AGENT_SESSION_DIR": str(settings.agent_session_dir),
        **env_overrides,
    }
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestBadDatabaseUrl:
    """Every command reports a bad DATABASE_URL in one line, never a traceback."""

    def test_a_url_that_is_not_postgresql_is_exit_2_naming_the_setting(self, settings) -> None:
        for args in (["migrate"], ["sessions", "stats"], ["token", "--user", "x"]):
            result = cli(settings, *args, DATABASE_URL="mysql://db/app")
            assert result.returncode == 2, result.stderr
            assert result.stderr == (
                "Invalid configuration: DATABASE_URL: Value error, must be a postgresql:// URL\n"
            )

    def test_an_unreachable_server_is_one_line(self, settings) -> None:
        url = "postgresql://nobody@127.0.0.1:1/nothing"
        for args in (["migrate"], ["sessions", "stats"]):
            result = cli(settings, *args, DATABASE_URL=url, DATABASE_CONNECT_TIMEOUT_SECONDS="2")
            assert result.returncode == 1
            assert result.stderr.startswith("Cannot use the database (DATABASE_URL): ")
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert "Traceback" not in result.stderr


class TestTokenCommand:
    def test_prints_only_a_token_that_the_app_accepts(self, settings, tokens) -> None:
        result = cli(settings, "token", "--user", "zoe", "--admin")
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        assert result.stdout == token + "\n"
        claims = tokens.verify(token)
        assert (claims.subject, claims.is_admin) == ("zoe", True)


class TestSessionsCommands:
    async def test_stats_show_cleanup_dry_run_and_verify(
        self, client, alice, running, settings
    ) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that clis are fine")
        await age_thread(running.sessionmaker, thread_id, days=20)

        stats = cli(settings, "sessions", "stats")
        assert stats.returncode == 0, stats.stderr
        assert json.loads(stats.stdout)["sessions"] == 1

        shown = json.loads(cli(settings, "sessions", "show", thread_id).stdout)
        assert shown["file_items"] == 2

        dry = cli(settings, "sessions", "cleanup", "--dry-run")
        assert json.loads(dry.stdout)["counts"]["would_delete"] == 1
        assert (await thread_row(running.sessionmaker, thread_id)).memory_state == "active"

        verified = cli(settings, "sessions", "verify")
        assert verified.returncode == 0, verified.stdout
        report = json.loads(verified.stdout)
        assert report["ok"] is True
        assert (report["files"]["orphan_files"], report["files"]["rows_without_file"]) == (0, 0)
        assert report["memory"]["checked"] == 1
        done = json.loads(cli(settings, "sessions", "run-job", "cleanup").stdout)
        assert done["status"] == "succeeded"
        assert (await thread_row(running.sessionmaker, thread_id)).memory_state == "expired"

        rebuilt = json.loads(cli(settings, "sessions", "rebuild", thread_id).stdout)
        assert rebuilt["items"] == 2

    def test_prune_needs_a_thread_or_all(self, settings) -> None:
        result = cli(settings, "sessions", "prune")
        assert result.returncode != 0
        assert "THREAD_ID or --all" in result.stderr
