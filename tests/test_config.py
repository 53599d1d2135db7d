"""Startup refuses bad settings with a message that names the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager

from app.config import ConfigError, ModelProviderName, OpenAIApi, load_settings
from app.main import create_app
from tests.database import drop_database, recreate_database

REPO_ROOT = Path(__file__).resolve().parent.parent


class TestSettingsValidation:
    @pytest.mark.parametrize(
        ("overrides", "named"),
        [
            ({"AGENT_SESSION_CLEANUP_HOUR": 24}, "AGENT_SESSION_CLEANUP_HOUR"),
            ({"AGENT_SESSION_MAX_MESSAGES": 1}, "AGENT_SESSION_MAX_MESSAGES"),
            ({"AGENT_SESSION_RETENTION_DAYS": -1}, "AGENT_SESSION_RETENTION_DAYS"),
            ({"AGENT_SESSION_CLEANUP_TZ": "Mars/Olympus"}, "AGENT_SESSION_CLEANUP_TZ"),
            ({"PORT": 70000}, "PORT"),
            ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL"),
            ({"APP_ENV": "production", "AUTH_JWT_SECRET": None}, "AUTH_JWT_SECRET"),
            ({"APP_ENV": "staging"}, "APP_ENV"),
            ({"AGENT_SESSION_COMPACTION": "llm"}, "AGENT_SESSION_COMPACTION"),
            ({"AGENT_SESSION_SUMMARY_MAX_CHARS": 100}, "AGENT_SESSION_SUMMARY_MAX_CHARS"),
            ({"AGENT_SESSION_SUMMARY_TIMEOUT_SECONDS": 0}, "AGENT_SESSION_SUMMARY_TIMEOUT_SECONDS"),
        ],
    )
    def test_invalid_value_names_the_setting(self, overrides, named) -> None:
        with pytest.raises(ConfigError) as error:
            load_settings(**overrides)
        assert named in str(error.value)

    def test_a_provider_client_that_could_outwait_a_turn_is_refused(self) -> None:
        remote = {"MODEL_PROVIDER": "openai", "OPENAI_API_KEY": "sk-test"}
        with pytest.raises(ConfigError) as error:
            load_settings(**remote, OPENAI_TIMEOUT_SECONDS=100, OPENAI_MAX_RETRIES=2)
        assert str(error.value) == (
            "Invalid configuration: settings: Value error, OPENAI_TIMEOUT_SECONDS x "
            "(OPENAI_MAX_RETRIES + 1) = 300 s must be below MAX_TURN_SECONDS (300)"
        )
        assert load_settings(**remote, OPENAI_TIMEOUT_SECONDS=99).OPENAI_TIMEOUT_SECONDS == 99
        # Offline there is no provider client to bound.
        assert load_settings(OPENAI_TIMEOUT_SECONDS=3600).OPENAI_TIMEOUT_SECONDS == 3600

    @pytest.mark.parametrize(
        ("overrides", "cap", "kept", "prune_to"),
        [
            # The read window bounds memory; one item is the summary's; prunes cut deeper.
            ({}, 100, 99, 75),
            ({"AGENT_SESSION_MAX_MESSAGES": 12}, 12, 11, 9),
            ({"AGENT_SESSION_MAX_MESSAGES": 2}, 2, 1, 1),
            ({"AGENT_SESSION_COMPACTION": "off"}, 200, 200, 200),
            ({"AGENT_SESSION_COMPACTION": "off", "AGENT_SESSION_READ_LIMIT": 5}, 200, 200, 200),
        ],
    )
    def test_the_memory_cap_with_and_without_compaction(
        self, overrides, cap, kept, prune_to
    ) -> None:
        settings = load_settings(**overrides)
        assert (settings.memory_cap, settings.memory_max_items) == (cap, kept)
        assert settings.memory_prune_to == prune_to

    def test_range_is_in_the_message(self) -> None:
        with pytest.raises(ConfigError, match="less than or equal to 23"):
            load_settings(AGENT_SESSION_CLEANUP_HOUR=30)

    def test_database_url_is_normalized_to_psycopg(self) -> None:
        neon = "postgresql://u:p@ep-x.neon.tech/db?sslmode=require"
        assert load_settings(DATABASE_URL=neon).DATABASE_URL == (
            "postgresql+psycopg://u:p@ep-x.neon.tech/db?sslmode=require"
        )
        assert (
            load_settings(DATABASE_URL="postgres://h/db").DATABASE_URL
            == "postgresql+psycopg://h/db"
        )

    def test_model_provider_and_api_defaults(self) -> None:
        assert load_settings().model_provider == ModelProviderName.OFFLINE
        keyed = load_settings(MODEL_PROVIDER=None, OPENAI_API_KEY="sk-test")
        assert keyed.model_provider == ModelProviderName.OPENAI
        assert keyed.openai_api == OpenAIApi.RESPONSES
        local = load_settings(OPENAI_BASE_URL="http://127.0.0.1:11434/v1", OPENAI_API_KEY="x")
        assert local.openai_api == OpenAIApi.CHAT_COMPLETIONS

    def test_data_dir_roots_runtime_data(self, tmp_path) -> None:
        settings = load_settings(DATA_DIR=tmp_path)
        assert settings.agent_session_dir == tmp_path / "sessions"
        assert settings.embedded_pgdata_dir == tmp_path / "postgres"


class TestStartupRefusals:
    def test_cli_exits_with_the_settings_message(self, tmp_path) -> None:
        env = {**os.environ, "AGENT_SESSION_CLEANUP_HOUR": "99", "PYTHONPATH": "backend"}
        result = subprocess.run(
            [sys.executable, "-m", "app", "serve"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert "AGENT_SESSION_CLEANUP_HOUR" in result.stderr
        assert "Traceback" not in result.stderr

    async def test_external_database_behind_head_refuses_without_auto_migrate(
        self, test_database, settings_factory
    ) -> None:
        name = "threadkeeper_unmigrated_test"
        recreate_database(test_database.admin_conninfo, name)
        try:
            settings = settings_factory(DATABASE_URL=test_database.sibling_url(name))
            with pytest.raises(ConfigError, match="make migrate"):
                async with LifespanManager(create_app(settings)):
                    pass
            migrating = settings_factory(
                DATABASE_URL=test_database.sibling_url(name), AUTO_MIGRATE=True
            )
            async with LifespanManager(create_app(migrating)):
                pass
            async with LifespanManager(create_app(settings)):  # now at head: starts
                pass
        finally:
            drop_database(test_database.admin_conninfo, name)


class TestEnvExample:
    def test_every_setting_is_documented_in_env_example(self) -> None:
        import re

        from app.config import Settings

        text = (REPO_ROOT / ".env.example").read_text()
        documented = set(re.findall(r"^([A-Z_]+)=", text, re.M))
        assert documented == set(Settings.model_fields)
        # Each setting carries a comment line right above it (or its group's comment).
        assert text.count("\n# ") >= len(documented) // 2


class TestLogging:
    def test_production_logs_one_json_object_per_line(self, capsys) -> None:
        import json
        import logging

        from app.logging import configure_logging

        configure_logging(
            load_settings(APP_ENV="production", AUTH_JWT_SECRET="x" * 40, LOG_LEVEL="INFO")
        )
        logging.getLogger("app.test").info("thread %s ready", "t-1")
        record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert record["message"] == "thread t-1 ready"
        assert record["level"] == "INFO"
        configure_logging(load_settings(LOG_LEVEL="WARNING"))
