"""The todo agent and the model behind it, chosen by settings."""

from __future__ import annotations

from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel
from agents.models.interface import Model

from app.assistant.offline_model import OfflineModel
from app.assistant.tools import TASK_TOOLS, TurnContext
from app.config import ModelProviderName, OpenAIApi, Settings

INSTRUCTIONS = """\
You are Threadkeeper's todo assistant. You keep the user's todo list with your tools:
add_task, list_tasks, update_task, complete_task and delete_task. To change or remove a task,
call list_tasks first and use the task's id from its output; never invent ids. Confirm what you
did in one short sentence. You remember the conversation: when the user asks about something
said earlier, answer from the conversation history. Be brief."""


def build_model(settings: Settings) -> Model:
    """The model for `settings`: the offline model, or an OpenAI(-compatible) one.

    Compatible servers (Ollama, vLLM, llama.cpp) implement Chat Completions, not Responses,
    hence OPENAI_API.
    """
    if settings.model_provider == ModelProviderName.OFFLINE:
        return OfflineModel(delta_delay_s=settings.OFFLINE_MODEL_DELAY_MS / 1000)
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        # Local servers accept any key; the OpenAI client insists on one.
        api_key=settings.OPENAI_API_KEY or "unused",
        base_url=settings.OPENAI_BASE_URL,
    )
    if settings.openai_api == OpenAIApi.CHAT_COMPLETIONS:
        return OpenAIChatCompletionsModel(model=settings.MODEL, openai_client=client)
    return OpenAIResponsesModel(model=settings.MODEL, openai_client=client)


def build_agent(settings: Settings, *, model: Model | None = None) -> Agent[TurnContext]:
    """The todo agent; pass `model` to run it on any SDK `Model` (tests, other providers)."""
    return Agent[TurnContext](
        name="Threadkeeper",
        instructions=INSTRUCTIONS,
        model=model or build_model(settings),
        tools=list(TASK_TOOLS),
    )
