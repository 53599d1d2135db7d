"""A scripted OpenAI-compatible model server: the real provider path over real HTTP.

Tests and the benchmark point `openai.AsyncOpenAI(base_url=server.base_url)` (and so the SDK's
`OpenAIChatCompletionsModel`, `OpenAIResponsesModel` and `OpenAIConversationsSession`) at it
instead of patching the client. It answers Chat Completions and Responses (streamed or not),
the model list, the Conversations API and the trace-ingest endpoint, and records every request.

Each model request is answered by, in order: a rule (unknown model -> 404, prompt over the
context window -> 400; a wrong API key -> 401 for any request), the next step a test
enqueued (`Text`, `ToolCall`, a list of them, `HttpError`, `Malformed`, `Hang`, `Drop`,
`EndsEarly`), or the mode: "grammar" (the offline model's grammar over the history the request
carries) or "fixed" (N counting tokens). See `steps.py` and `state.ServerConfig`.

In tests use the `model_server` fixture (`tests/model_server/fixtures.py`); elsewhere
`ModelServer` as a context manager, or `python -m tests.model_server --port N` as a process.
"""

from tests.model_server.history import estimate_tokens
from tests.model_server.server import ModelServer
from tests.model_server.state import DEFAULT_MODELS, RecordedRequest, ServerConfig
from tests.model_server.steps import (
    Drop,
    EndsEarly,
    Hang,
    HttpError,
    Malformed,
    Step,
    Text,
    ToolCall,
    ToolCalls,
)

__all__ = [
    "DEFAULT_MODELS",
    "Drop",
    "EndsEarly",
    "Hang",
    "HttpError",
    "Malformed",
    "ModelServer",
    "RecordedRequest",
    "ServerConfig",
    "Step",
    "Text",
    "ToolCall",
    "ToolCalls",
    "estimate_tokens",
]
