"""Agents plugged in by settings (AGENTS): loading, choosing per thread, the run context."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

from app.assistant.offline_model import OfflineModel
from app.assistant.registry import load_agents
from app.config import ConfigError, load_settings
from tests.agent_plugin import support
from tests.conftest import start_app
from tests.factories import create_thread
from tests.sse import send

REPO_ROOT = Path(__file__).resolve().parents[2]
TODO = "todo=app.assistant.todo:build_agent"
SUPPORT = "support=tests.agent_plugin.support:build_agent"


class TestAgentsSetting:
    def test_pairs_keep_their_order_and_the_first_is_the_default(self) -> None:
        settings = load_settings(AGENTS=f"{SUPPORT}, {TODO}")
        assert settings.AGENTS == {
            "support": "tests.agent_plugin.support:build_agent",
            "todo": "app.assistant.todo:build_agent",
        }
        assert load_agents(settings, OfflineModel()).default == "support"

    def test_the_default_serves_the_todo_agent(self) -> None:
        assert load_settings().AGENTS == {"todo": "app.assistant.todo:build_agent"}

    @pytest.mark.parametrize(
        ("value", "says"),
        [
            ("todo", "is not name=module:factory"),
            ("todo=app.assistant.todo", "is not an import path module.path:factory"),
            ("Todo=app.assistant.todo:build_agent", "agent name 'Todo'"),
            (f"{TODO},todo=app.assistant.triage:build_agent", "agent 'todo' is named twice"),
            (" , ", "name at least one agent"),
        ],
    )
    def test_a_malformed_value_names_agents(self, value: str, says: str) -> None:
        with pytest.raises(ConfigError) as caught:
            load_settings(AGENTS=value)
        assert str(caught.value).startswith("Invalid configuration: AGENTS: ")
        assert says in str(caught.value)


class TestLoadingFactories:
    def test_each_factory_gets_the_settings_and_the_chosen_model(self) -> None:
        settings, model = load_settings(AGENTS=f"{TODO},{SUPPORT}"), OfflineModel()
        registry = load_agents(settings, model)
        assert registry.names == ["todo", "support"]
        assert support.BUILT[-1] == (settings, model)
        assert [agent.model for agent in registry.agents.values()] == [model, model]

    @pytest.mark.parametrize(
        ("path", "message"),
        [
            (
                "tests.agent_plugin.broken:build_agent",
                "Invalid configuration: AGENTS: agent 'desk' (tests.agent_plugin.broken:"
                "build_agent): cannot import it (ModuleNotFoundError: No module named "
                "'threadkeeper_missing_dependency')",
            ),
            (
                "tests.agent_plugin.nowhere:build_agent",
                "Invalid configuration: AGENTS: agent 'desk' (tests.agent_plugin.nowhere:"
                "build_agent): cannot import it (ModuleNotFoundError: No module named "
                "'tests.agent_plugin.nowhere')",
            ),
            (
                "tests.agent_plugin.support:build_agents",
                "Invalid configuration: AGENTS: agent 'desk' (tests.agent_plugin.support:"
                "build_agents): cannot import it (AttributeError: module "
                "'tests.agent_plugin.support' has no attribute 'build_agents')",
            ),
            (
                "tests.agent_plugin.faulty:NOT_A_FACTORY",
                "Invalid configuration: AGENTS: agent 'desk' (tests.agent_plugin.faulty:"
                "NOT_A_FACTORY): it is not callable",
            ),
            (
                "tests.agent_plugin.faulty:returns_a_string",
                "Invalid configuration: AGENTS: agent 'desk' (tests.agent_plugin.faulty:"
                "returns_a_string): the factory returned str, not an agents.Agent",
            ),
            (
                "tests.agent_plugin.faulty:raises",
                "Invalid configuration: AGENTS: agent 'desk' (tests.agent_plugin.faulty:"
                "raises): the factory failed (RuntimeError: the support desk is closed)",
            ),
        ],
    )
    def test_a_factory_that_cannot_serve_is_one_line_naming_agents(
        self, path: str, message: str
    ) -> None:
        settings = load_settings(AGENTS=f"{TODO},desk={path}")
        with pytest.raises(ConfigError) as caught:
            load_agents(settings, OfflineModel())
        assert str(caught.value) == message

    async def test_the_app_does_not_start_with_a_broken_factory(self, settings_factory) -> None:
        settings = settings_factory(AGENTS="desk=tests.agent_plugin.broken:build_agent")
        with pytest.raises(ConfigError, match="AGENTS: agent 'desk'"):
            async with start_app(settings):
                pass

    def test_serve_refuses_to_start_with_one_line(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": f"backend{os.pathsep}.",
            "AGENTS": "todo=app.assistant.todo:build_agent,desk=mypkg.desk:build_agent",
        }
        result = subprocess.run(
            [sys.executable, "-m", "app", "serve"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert result.stderr == (
            "Invalid configuration: AGENTS: agent 'desk' (mypkg.desk:build_agent): cannot "
            "import it (ModuleNotFoundError: No module named 'mypkg')\n"
        )


def _whoami_model() -> ScriptedModel:
    return ScriptedModel(
        [
            ModelStep(output=[function_call("whoami", {}, call_id="call_who")]),
            ModelStep(output=[assistant_message("That is you.")]),
        ]
    )


class TestThreadAgents:
    async def test_a_thread_is_served_by_the_agent_it_was_created_with(
        self, settings_factory, alice
    ) -> None:
        settings = settings_factory(AGENTS=f"{TODO},{SUPPORT}")
        async with (
            start_app(settings, model=_whoami_model()) as running,
            running.client() as client,
        ):
            created = await client.post("/api/threads", json={"agent": "support"}, headers=alice)
            assert created.status_code == 201
            thread = created.json()
            assert thread["agent"] == "support"
            events = await send(client, thread["id"], "who am I?", alice)
            listed = await client.get("/api/threads", headers=alice)
            user_id = await running.user_id(alice)
        (result,) = [e.data for e in events if e.event == "tool_result"]
        assert json.loads(result["output"]) == {
            "user_id": str(user_id),
            "thread_id": thread["id"],
            "agent": "support",
            "messages": 1,  # the user's message, committed before the run
        }
        (reply,) = [e.data for e in events if e.event == "assistant_message"]
        assert (reply["content"], reply["metadata"]["agent"]) == ("That is you.", "Support")
        assert [t["agent"] for t in listed.json()["data"]] == ["support"]

    async def test_a_thread_without_an_agent_gets_the_first(self, settings_factory, alice) -> None:
        settings = settings_factory(AGENTS=f"{SUPPORT},{TODO}")
        async with start_app(settings) as running, running.client() as client:
            untitled = await client.post("/api/threads", headers=alice)
            titled = await client.post("/api/threads", json={"title": "Q"}, headers=alice)
            agents = await client.get("/api/agents", headers=alice)
        assert (untitled.json()["agent"], titled.json()["agent"]) == ("support", "support")
        assert agents.json() == {
            "data": [
                {"name": "support", "display_name": "Support", "default": True},
                {"name": "todo", "display_name": "Threadkeeper", "default": False},
            ]
        }

    async def test_an_unknown_agent_is_422_naming_the_choices(
        self, settings_factory, alice
    ) -> None:
        settings = settings_factory(AGENTS=f"{TODO},{SUPPORT}")
        async with start_app(settings) as running, running.client() as client:
            response = await client.post("/api/threads", json={"agent": "sales"}, headers=alice)
            threads = await client.get("/api/threads", headers=alice)
        assert response.status_code == 422
        assert response.json() == {
            "error": "UnprocessableError",
            "detail": "agent: unknown agent 'sales'; choose one of: todo, support",
        }
        assert threads.json()["data"] == []

    async def test_listing_agents_needs_a_token(self, client) -> None:
        response = await client.get("/api/agents")
        assert response.status_code == 401

    async def test_a_thread_whose_agent_was_removed_refuses_turns_and_keeps_its_log(
        self, settings_factory, alice
    ) -> None:
        with_support = settings_factory(AGENTS=f"{TODO},{SUPPORT}")
        async with start_app(with_support) as running, running.client() as client:
            thread = await client.post("/api/threads", json={"agent": "support"}, headers=alice)
        thread_id = thread.json()["id"]
        async with start_app(settings_factory(AGENTS=TODO)) as running, running.client() as client:
            response = await client.post(
                f"/api/threads/{thread_id}/messages", json={"text": "hi"}, headers=alice
            )
            messages = await client.get(f"/api/threads/{thread_id}/messages", headers=alice)
            shown = await client.get(f"/api/threads/{thread_id}", headers=alice)
        assert response.status_code == 409
        assert response.json()["detail"] == (
            "This thread's agent 'support' is not served here any more (AGENTS has: todo); "
            "start a new thread"
        )
        assert messages.json()["data"] == []
        assert shown.json()["agent"] == "support"

    async def test_the_run_context_never_reaches_another_users_thread(
        self, settings_factory, alice, bob
    ) -> None:
        settings = settings_factory(AGENTS=f"{SUPPORT},{TODO}")
        model = ScriptedModel(
            [
                ModelStep(output=[function_call("whoami", {}, call_id="call_a")]),
                ModelStep(output=[assistant_message("alice")]),
                ModelStep(output=[function_call("whoami", {}, call_id="call_b")]),
                ModelStep(output=[assistant_message("bob")]),
            ]
        )
        async with start_app(settings, model=model) as running, running.client() as client:
            alices = await create_thread(client, alice)
            bobs = await create_thread(client, bob)
            seen_by_alice = await send(client, alices, "me?", alice)
            seen_by_bob = await send(client, bobs, "me?", bob)
            alice_id, bob_id = await running.user_id(alice), await running.user_id(bob)
        outputs = [
            json.loads(e.data["output"])
            for e in seen_by_alice + seen_by_bob
            if e.event == "tool_result"
        ]
        assert [(o["user_id"], o["thread_id"]) for o in outputs] == [
            (str(alice_id), alices),
            (str(bob_id), bobs),
        ]


class TestReadmeExample:
    async def test_the_serve_your_own_agent_example_runs_as_written(
        self, settings_factory, alice, tmp_path, monkeypatch
    ) -> None:
        readme = (REPO_ROOT / "README.md").read_text()
        section = readme[readme.index("### Serve your own agent") :]
        start = section.index("```python\n") + len("```python\n")
        code = section[start : section.index("\n```", start)]
        package = tmp_path / "readme_example" / "mypkg"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "support.py").write_text(code)
        monkeypatch.syspath_prepend(str(package.parent))
        agents = section[section.index("`AGENTS=") + 8 : section.index("` serves both")]
        settings = settings_factory(AGENTS=agents)
        async with (
            start_app(settings, model=_whoami_model()) as running,
            running.client() as client,
        ):
            thread_id = await create_thread(client, alice)
            events = await send(client, thread_id, "who?", alice)
            user_id = await running.user_id(alice)
        (result,) = [e.data for e in events if e.event == "tool_result"]
        assert result["output"] == f"user {user_id}, thread {thread_id}"
