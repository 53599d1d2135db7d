"""`users erase` and `search status|reindex`, run as an operator would: subprocesses
(on a database of their own, see conftest: the search configuration is database-wide)."""

from __future__ import annotations

import json

from tests.cli.test_commands import cli
from tests.factories import thread_with_turns


class TestUsersErase:
    async def test_erases_by_subject_then_reports_an_unknown_one(
        self, client, alice, running, settings, tokens
    ) -> None:
        await thread_with_turns(client, alice, "add task from the cli")
        subject = tokens.verify(alice["Authorization"].split()[1]).subject
        user_id = await running.user_id(alice)
        erased = cli(settings, "users", "erase", subject)
        assert erased.returncode == 0, erased.stderr
        assert json.loads(erased.stdout) == {
            "subject": subject,
            "user_id": str(user_id),
            "threads": 1,
            "messages": 2,
            "tasks": 1,
            "memory_files": 1,
            "quarantined_files": 0,
            "maintenance_runs_scrubbed": 0,
        }
        again = cli(settings, "users", "erase", subject)
        assert again.returncode == 1
        assert again.stderr == f"NotFoundError: No user with subject {subject!r}\n"


class TestUsersLimits:
    async def test_sets_exactly_the_overrides_given_and_prints_the_usage(
        self, client, alice, running, settings, tokens
    ) -> None:
        await thread_with_turns(client, alice, "add task from the cli")
        subject = tokens.verify(alice["Authorization"].split()[1]).subject
        env = {
            "LIMIT_TURNS_PER_MINUTE": "20",
            "LIMIT_RUNNING_TURNS": "4",
            "LIMIT_DAILY_TOKENS": "0",
            "LIMIT_OPEN_STREAMS": "0",
        }
        set_ = cli(
            settings,
            "users",
            "limits",
            subject,
            "--turns-per-minute",
            "0",
            "--daily-tokens",
            "500",
            **env,
        )
        assert set_.returncode == 0, set_.stderr
        printed = json.loads(set_.stdout)
        assert printed["limits"] == {
            "turns_per_minute": 0,
            "running_turns": 4,
            "daily_tokens": 500,
            "open_streams": 0,
            "exempt": False,
        }
        assert printed["turns_today"] == 1
        shown = cli(settings, "users", "usage", subject, **env)
        assert json.loads(shown.stdout)["limits"] == printed["limits"]
        restored = cli(settings, "users", "limits", subject, **env)
        assert json.loads(restored.stdout)["limits"]["turns_per_minute"] == 20
        unknown = cli(settings, "users", "usage", "nobody-at-all", **env)
        assert unknown.returncode == 1
        assert unknown.stderr == "NotFoundError: No user with subject 'nobody-at-all'\n"


class TestSearchCommands:
    def test_status_then_reindex_to_another_configuration(self, settings) -> None:
        status = cli(settings, "search", "status")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout) == {
            "config": "simple",
            "building": False,
            "setting": "simple",
        }
        rebuilt = cli(settings, "search", "reindex", SEARCH_TEXT_CONFIG="german")
        assert rebuilt.returncode == 0, rebuilt.stderr
        report = json.loads(rebuilt.stdout)
        assert (report["status"], report["counts"]["config"], report["counts"]["finished"]) == (
            "succeeded",
            "german",
            True,
        )
        after = json.loads(cli(settings, "search", "status", SEARCH_TEXT_CONFIG="german").stdout)
        assert after == {"config": "german", "building": False, "setting": "german"}

    def test_an_unknown_configuration_fails_the_run_naming_the_setting(self, settings) -> None:
        result = cli(settings, "search", "reindex", SEARCH_TEXT_CONFIG="klingon")
        assert result.returncode == 1
        report = json.loads(result.stdout)
        assert report["status"] == "failed"
        assert report["error"] == (
            "ConfigError: SEARCH_TEXT_CONFIG: PostgreSQL has no text search configuration "
            "'klingon' (SELECT cfgname FROM pg_ts_config lists them)"
        )
