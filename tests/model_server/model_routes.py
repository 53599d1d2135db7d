"""The model endpoints: Chat Completions, Responses and the model list.

Each request is reduced to a `ModelCall`, answered by `planner.decide` and rendered by the
API's renderer. The Responses route also plays the server-side history the real API keeps:
`previous_response_id` continues a stored response, and `conversation` reads the conversation's
items as history and appends the input and output to it once the reply is complete.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from app.assistant.offline_history import message_text
from tests.model_server import chat_api, responses_api
from tests.model_server.conversations import Conversation, add_items, new_id
from tests.model_server.errors import (
    BadRequest,
    error_response,
    invalid_request,
    json_object,
    not_found,
    require,
)
from tests.model_server.history import (
    chat_instructions,
    chat_items,
    estimate_tokens,
    offered_tools,
    prompt_text,
    responses_items,
)
from tests.model_server.planner import ModelCall, decide, tool_calls
from tests.model_server.state import ServerState
from tests.model_server.steps import HttpError, Text

MODEL_CREATED = 1_700_000_000


def server_state(request: Request) -> ServerState:
    return request.app.state.server  # type: ignore[no-any-return]


async def chat_completions(request: Request) -> Response | ASGIApp:
    """`POST /v1/chat/completions`, streamed (SSE chunks) or not."""
    state = server_state(request)
    try:
        body = await json_object(request)
        model = require(body, "model")
        messages = require(body, "messages")
    except BadRequest as e:
        return e.response
    stream = bool(body.get("stream"))
    call = ModelCall(
        api="chat",
        model=str(model),
        stream=stream,
        include_usage=stream and bool((body.get("stream_options") or {}).get("include_usage")),
        instructions=chat_instructions(messages),
        items=chat_items(messages),
        tools=offered_tools(body.get("tools"), body.get("tool_choice")),
    )
    step = decide(state, call)
    if isinstance(step, HttpError):
        return error_response(step)
    return chat_api.render(step, call, state.hangs)


async def responses(request: Request) -> Response | ASGIApp:
    """`POST /v1/responses`, streamed (Responses events) or not."""
    state = server_state(request)
    try:
        body = await json_object(request)
        model = require(body, "model")
        history, conversation = _server_history(state, body)
    except BadRequest as e:
        return e.response
    new_items = responses_items(body.get("input"))
    call = ModelCall(
        api="responses",
        model=str(model),
        stream=bool(body.get("stream")),
        include_usage=True,
        instructions=str(body.get("instructions") or ""),
        items=history + new_items,
        tools=offered_tools(body.get("tools"), body.get("tool_choice")),
    )
    step = decide(state, call)
    if isinstance(step, HttpError):
        return error_response(step)
    response_id = new_id("resp")
    output: list[dict[str, Any]] = []
    if isinstance(step, Text) or tool_calls(step):
        output = responses_api.output_items(step)
        if body.get("store") is not False:
            state.store_response(response_id, call.items + output)
        if conversation is not None:
            add_items(conversation, new_items + output)
    extra = {
        "instructions": body.get("instructions"),
        "previous_response_id": body.get("previous_response_id"),
        "conversation": {"id": conversation.id} if conversation is not None else None,
        "store": body.get("store") is not False,
    }
    return responses_api.render(step, call, state.hangs, response_id, output, extra)


async def compact(request: Request) -> Response:
    """`POST /v1/responses/compact`: the input's user messages, then one compaction item.

    Like the real API, which keeps every user message and folds the rest into an opaque
    `compaction` item; here its content is readable (`compacted N items`) so a test can see
    what was folded. Nothing scripted is consumed.
    """
    state = server_state(request)
    try:
        body = await json_object(request)
        require(body, "model")
        history, _ = _server_history(state, body)
    except BadRequest as e:
        return e.response
    items = history + responses_items(body.get("input"))
    users = [item for item in items if item.get("role") == "user"]
    output = [
        {
            "id": new_id("msg"),
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_text", "text": message_text(item.get("content"))}],
        }
        for item in users
    ]
    folded = len(items) - len(users)
    output.append(
        {
            "id": new_id("cmp"),
            "type": "compaction",
            "encrypted_content": f"compacted {folded} items",
        }
    )
    tokens = estimate_tokens(prompt_text("", items))
    return JSONResponse(
        {
            "id": new_id("resp"),
            "object": "response.compaction",
            "created_at": MODEL_CREATED,
            "output": output,
            "usage": {
                "input_tokens": tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 1,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": tokens + 1,
            },
        }
    )


def _server_history(
    state: ServerState, body: dict[str, Any]
) -> tuple[list[dict[str, Any]], Conversation | None]:
    """History the server holds for this request, and the conversation to append to."""
    previous = body.get("previous_response_id")
    if previous is not None:
        if previous not in state.responses:
            raise BadRequest(
                invalid_request(
                    f"Previous response with id '{previous}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            )
        return list(state.responses[previous]), None
    reference = body.get("conversation")
    if reference is None:
        return [], None
    conversation_id = reference.get("id") if isinstance(reference, dict) else str(reference)
    conversation = state.conversations.get(str(conversation_id))
    if conversation is None:
        raise BadRequest(
            not_found(f"Conversation with id '{conversation_id}' not found.", param="conversation")
        )
    return list(conversation.items), conversation


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": "threadkeeper"}


async def list_models(request: Request) -> JSONResponse:
    """`GET /v1/models`."""
    models = server_state(request).config.models
    return JSONResponse({"object": "list", "data": [_model(m) for m in models]})


async def get_model(request: Request) -> JSONResponse:
    """`GET /v1/models/{id}`: a cheap health check target."""
    model_id = request.path_params["model_id"]
    if model_id not in server_state(request).config.models:
        return error_response(HttpError.model_not_found(model_id))
    return JSONResponse(_model(model_id))
