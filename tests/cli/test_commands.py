"""The operators' CLI, run as a newcomer would: a subprocess against the real database."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from app.cli.memory import JOB_NAMES
from app.scheduler.registry import JOBS
from tests.cli.process import run_app
from tests.factories import age_thread, thread_row, thread_with_turns


def cli(settings, *args: str, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        "DATABASE_URL": settings.DATABASE_URL,
        "AGENT_SESSION_DIR": str(settings.agent_session_dir),
        **env_overrides,
    }
    return run_app(*args, data_dir=settings.DATA_DIR, **env)


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


class TestUsageErrors:
    """A bad or missing argument is one line and exit code 2, like typer's own usage errors.

    They are found before any database is opened, so no database is given here at all.
    """

    @pytest.mark.parametrize(
        ("args", "line"),
        [
            (
                ["sessions", "show", "THREAD_ID"],
                "Error: Invalid value for 'THREAD_ID': 'THREAD_ID' is not a thread id: a UUID "
                "like 3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f, as in the API's thread `id` "
                "(see `python -m app sessions show --help`)",
            ),
            (
                ["sessions", "prune"],
                "Error: Invalid value for THREAD_ID / --all: give exactly one "
                "(see `python -m app sessions prune --help`)",
            ),
            (
                ["sessions", "prune", "--all", "3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f"],
                "Error: Invalid value for THREAD_ID / --all: give exactly one "
                "(see `python -m app sessions prune --help`)",
            ),
            (
                ["sessions", "clear"],
                "Error: Missing argument 'THREAD_ID'. (see `python -m app sessions clear --help`)",
            ),
            (
                ["sessions", "run-job", "nightly"],
                "Error: Invalid value for 'JOB': no job 'nightly'; jobs: cleanup, prune, "
                "sweep-orphans, vacuum, reconcile, expire-turn-events, reindex-search "
                "(see `python -m app sessions run-job --help`)",
            ),
            (
                ["sessions", "cleanup", "--older-than", "0"],
                "Error: Invalid value for '--older-than': Input should be greater than or "
                "equal to 1 (see `python -m app sessions cleanup --help`)",
            ),
            (
                ["sesions", "stats"],
                "Error: No such command 'sesions'. Did you mean 'sessions'? (see `python -m app --help`)",
            ),
            (
                ["token"],
                "Error: Missing option '--user'. (see `python -m app token --help`)",
            ),
            (
                ["token", "--user", ""],
                "Error: Invalid value for '--user': the user name is empty; name one, e.g. "
                "--user alice (see `python -m app token --help`)",
            ),
            (
                ["token", "--user", "   "],
                "Error: Invalid value for '--user': the user name is empty; name one, e.g. "
                "--user alice (see `python -m app token --help`)",
            ),
            (
                ["token", "--user", "x" * 256],
                "Error: Invalid value for '--user': the user name is over 255 characters "
                "(see `python -m app token --help`)",
            ),
        ],
    )
    def test_a_bad_argument_is_one_line_and_exit_2(
        self, tmp_path: Path, args: list[str], line: str
    ) -> None:
        result = run_app(*args, data_dir=tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (2, "", line + "\n")

    def test_run_job_help_lists_every_job_the_runbook_uses(self, tmp_path: Path) -> None:
        assert tuple(JOBS) == JOB_NAMES  # the CLI's list is the registry's
        result = run_app("sessions", "run-job", "--help", data_dir=tmp_path, COLUMNS="200")
        assert result.returncode == 0, result.stderr
        assert (
            "Run a maintenance job now: cleanup, prune, sweep-orphans, vacuum, reconcile, "
            "expire-turn-events, reindex-search." in " ".join(result.stdout.split())
        )

    def test_no_command_shows_the_commands(self, tmp_path: Path) -> None:
        result = run_app(data_dir=tmp_path, COLUMNS="200")
        assert result.returncode == 2
        for command in ("serve", "migrate", "token", "chat", "sessions"):
            assert f"│ {command} " in result.stdout + result.stderr
