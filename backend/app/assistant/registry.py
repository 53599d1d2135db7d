"""The agents this server serves, plugged in by settings (`AGENTS`) and built once at startup.

`AGENTS=todo=app.assistant.todo:build_agent,support=mypkg.support:build_agent` names each
agent and the factory that builds it. A factory is any importable callable

    def build_agent(settings: Settings, model: Model) -> Agent[TurnContext]: ...

called once at startup with the settings and the model they chose; its tools receive the
`TurnContext` run context (`app.assistant.context`). A thread is served by the agent chosen
when it was created (the first one by default); handoffs between agents inside a run are the
SDK's own, and their items stay in memory like any other.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agents import Agent
from agents.models.interface import Model

from app.assistant.context import TurnContext
from app.config import ConfigError, Settings
from app.errors import ConflictError, UnprocessableError


class AgentFactory(Protocol):
    """Builds an agent from the settings and the model they chose (called once at startup)."""

    def __call__(self, settings: Settings, model: Model) -> Agent[Any]: ...


@dataclass(frozen=True)
class AgentRegistry:
    """The served agents by name, in AGENTS order; the first is the default."""

    agents: Mapping[str, Agent[TurnContext]]

    @property
    def names(self) -> list[str]:
        return list(self.agents)

    @property
    def default(self) -> str:
        return next(iter(self.agents))

    def choose(self, name: str | None) -> str:
        """The agent a new thread gets: `name`, or the default when None.

        Raises:
            UnprocessableError: no agent of that name is served (422, naming the choices).
        """
        if name is None:
            return self.default
        if name not in self.agents:
            raise UnprocessableError(
                f"agent: unknown agent {name!r}; choose one of: {', '.join(self.names)}"
            )
        return name

    def for_thread(self, name: str) -> Agent[TurnContext]:
        """The agent serving a thread created with `name`.

        Raises:
            ConflictError: that agent is no longer in AGENTS (the thread cannot take turns).
        """
        agent = self.agents.get(name)
        if agent is None:
            raise ConflictError(
                f"This thread's agent {name!r} is not served here any more (AGENTS has: "
                f"{', '.join(self.names)}); start a new thread"
            )
        return agent

    def describe(self) -> str:
        """`todo (default), triage`: for the startup log."""
        return ", ".join(
            f"{name} (default)" if name == self.default else name for name in self.names
        )


def load_factory(name: str, path: str) -> AgentFactory:
    """Import `module.path:attribute` for the agent `name`.

    Raises:
        ConfigError: one line naming AGENTS, the agent and why it cannot be imported.
    """
    module_name, _, attribute = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except Exception as e:  # any import-time failure of a plug-in is a configuration error
        raise _config_error(name, path, f"cannot import it ({_reason(e)})") from e
    if not callable(factory):
        raise _config_error(name, path, "it is not callable")
    return factory  # type: ignore[no-any-return]  # callable; checked when it is called


def load_agents(settings: Settings, model: Model) -> AgentRegistry:
    """Import every factory in AGENTS and build its agent on `model`.

    Raises:
        ConfigError: a factory cannot be imported, fails, or returns something else than an
            `agents.Agent`; the message names AGENTS and the agent.
    """
    built: dict[str, Agent[TurnContext]] = {}
    for name, path in settings.AGENTS.items():
        factory = load_factory(name, path)
        try:
            agent = factory(settings, model)
        except Exception as e:  # a plug-in's bug must stop startup with its name on it
            raise _config_error(name, path, f"the factory failed ({_reason(e)})") from e
        if not isinstance(agent, Agent):
            raise _config_error(
                name, path, f"the factory returned {type(agent).__name__}, not an agents.Agent"
            )
        built[name] = agent
    return AgentRegistry(agents=built)


def check_factories(settings: Settings) -> None:
    """Import every factory in AGENTS without building anything (for `serve` before uvicorn).

    Raises:
        ConfigError: as `load_factory`.
    """
    for name, path in settings.AGENTS.items():
        load_factory(name, path)


def _config_error(name: str, path: str, why: str) -> ConfigError:
    return ConfigError(f"Invalid configuration: AGENTS: agent {name!r} ({path}): {why}")


def _reason(error: Exception) -> str:
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
