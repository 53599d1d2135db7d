"""What a newcomer does against `make run`: the README's walkthrough, and `make chat`.

One real server process (`python -m app serve`) for the module, on a database of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from scripts.readme_walkthrough import run_walkthrough

from app.config import Settings
from tests import database
from tests.cli.process import run_app
from tests.drills.harness import JWT_SECRET, ServerProcess, bearer, free_port


@pytest.fixture(scope="module")
def server(
    test_database: database.TestDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    # What `make run` serves: the fair-use limits at their defaults (drills turn them off).
    limits = {
        name: str(field.default)
        for name, field in Settings.model_fields.items()
        if name.startswith("LIMIT_")
    }
    with test_database.private_copy() as url:
        process = ServerProcess(
            database_url=url, data_dir=tmp_path_factory.mktemp("server"), extra_env=limits
        )
        process.start()
        try:
            yield process
        finally:
            process.stop()


def terminal_env(server: ServerProcess) -> dict[str, str]:
    """A shell with the server's settings, as `.env` would give every command."""
    return {**os.environ, "DATA_DIR": str(server.data_dir), "AUTH_JWT_SECRET": JWT_SECRET}


class TestReadmeWalkthrough:
    def test_every_command_runs_and_prints_what_it_should(self, server: ServerProcess) -> None:
        outcome = run_walkthrough(server.base_url, terminal_env(server))
        assert outcome.problems == [], outcome.stdout + outcome.stderr

        # What it did is there: alice's renamed thread with both turns; the scratch one gone.
        with httpx.Client(base_url=server.base_url, headers=bearer("alice")) as api:
            threads = api.get("/api/threads", params={"limit": 100}).json()["data"]
            assert [t["title"] for t in threads] == ["Errands"]
            messages = api.get(f"/api/threads/{threads[0]['id']}/messages").json()["data"]
        assert [(m["role"], m["content"]) for m in messages] == [
            ("user", "add task buy milk"),
            ("assistant", 'Added "buy milk" to your tasks.'),
            ("user", "list tasks"),
            ("assistant", "Your tasks:\n1. [ ] buy milk"),
        ]

    @pytest.mark.parametrize(
        ("block", "reason"),
        [
            # The old README: $ID was never set.
            ('curl -sS "$API/api/threads/$ID"\n', "ID: unbound variable"),
            # A request the server refuses (no token): curl's status makes the run fail.
            ('curl -sS -w "\\n" "$API/api/threads"\n', '{"error":"UnauthorizedError"'),
        ],
    )
    def test_a_block_that_fails_as_pasted_fails_the_check(
        self, server: ServerProcess, tmp_path: Path, block: str, reason: str
    ) -> None:
        readme = tmp_path / "README.md"
        readme.write_text(f"<!-- walkthrough -->\n```sh\n{block}```\n<!-- /walkthrough -->\n")
        outcome = run_walkthrough(server.base_url, terminal_env(server), readme)
        assert outcome.returncode != 0
        assert outcome.problems[0] == f"exit code {outcome.returncode}"
        assert reason in outcome.stdout + outcome.stderr


class TestChatCommand:
    def test_chats_with_the_running_server(self, server: ServerProcess, tmp_path: Path) -> None:
        result = run_app(
            *("chat", "--url", server.base_url, "--user", "carol", "--new"),
            data_dir=tmp_path,
            stdin="add task buy bread\nlist tasks\n/quit\n",
            AUTH_JWT_SECRET=JWT_SECRET,
        )
        assert result.returncode == 0, result.stderr
        assert (
            'you> bot>   · add_task({"title":"buy bread"})\nAdded "buy bread" to your tasks.\n'
            'you> bot>   · list_tasks({"include_done":true})\nYour tasks:\n1. [ ] buy bread\n'
            "you> "
        ) in result.stdout

    def test_a_token_from_another_data_dir_is_one_line_naming_its_secret(
        self, server: ServerProcess, tmp_path: Path
    ) -> None:
        # No AUTH_JWT_SECRET: `make chat` signs with the development secret of its DATA_DIR,
        # which is not the server's.
        result = run_app("chat", "--url", server.base_url, data_dir=tmp_path, AUTH_JWT_SECRET="")
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"The server at {server.base_url} refused the token (401: Token signature or "
            f"format is invalid). It was signed with the development secret in "
            f"{tmp_path / 'dev-jwt-secret'} (DATA_DIR={tmp_path}): run `make chat` with the "
            "same DATA_DIR (or AUTH_JWT_SECRET) as `make run`; keep them in .env, which both "
            "read\n"
        )

    def test_no_server_is_one_line_naming_host_and_port(self, tmp_path: Path) -> None:
        port = free_port()
        result = run_app("chat", data_dir=tmp_path, HOST="127.0.0.1", PORT=str(port))
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"No server at http://127.0.0.1:{port} (HOST, PORT): start it with `make run`, "
            "with the same HOST and PORT (keep them in .env)\n"
        )


class TestStartupLog:
    def test_a_start_says_where_it_serves_once_without_library_noise(
        self, test_database: database.TestDatabase, tmp_path: Path
    ) -> None:
        env = {"LOG_LEVEL": "INFO", "SCHEDULER_ENABLED": "true"}
        with test_database.private_copy() as url:
            process = ServerProcess(database_url=url, data_dir=tmp_path, extra_env=env)
            process.start()
            process.stop()
        log = process.log_path.read_text()
        lines = log.splitlines()
        serving = (
            f"INFO:     Uvicorn running on http://127.0.0.1:{process.port} (Press CTRL+C to quit)"
        )
        assert lines.count(serving) == 1, log
        assert sum(" app.bootstrap: Using PostgreSQL at " in line for line in lines) == 1, log
        assert "INFO:     Application startup complete." in lines
        # apscheduler's "Adding job tentatively" (three a start) and alembic's plugin list
        # used to open every log; nothing failed, so nothing has a traceback.
        noise = [line for line in lines if " apscheduler." in line or " alembic." in line]
        assert noise == []
        assert "Traceback" not in log
