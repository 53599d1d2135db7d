"""The ASGI app: routes, plus a gate that records, authenticates and tags every request.

The gate is plain ASGI rather than Starlette middleware: it must read (and record) the body
before the route does, then hand the route a `receive` that still reports the client's
disconnect, which a hanging or slow stream listens for.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.model_server import conversation_routes, model_routes
from tests.model_server.errors import error_response, invalid_request
from tests.model_server.state import RecordedRequest, ServerState
from tests.model_server.steps import HttpError


async def ingest_traces(request: Request) -> Response:
    """`POST /v1/traces/ingest`, where the SDK's `BackendSpanExporter` uploads spans."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return invalid_request("We could not parse the JSON body of your request.")
    model_routes.server_state(request).record_trace(body)
    return Response(status_code=204)


async def unknown_route(request: Request, exc: Exception) -> Response:
    """OpenAI's answer to a path it does not serve, so a wrong base URL is obvious."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    return invalid_request(f"Invalid URL ({request.method} {request.url.path})", status=status)


ROUTES = [
    Route("/v1/chat/completions", model_routes.chat_completions, methods=["POST"]),
    Route("/v1/responses", model_routes.responses, methods=["POST"]),
    Route("/v1/responses/compact", model_routes.compact, methods=["POST"]),
    Route("/v1/models", model_routes.list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", model_routes.get_model, methods=["GET"]),
    Route("/v1/traces/ingest", ingest_traces, methods=["POST"]),
    *conversation_routes.ROUTES,
]


def create_app(state: ServerState) -> ASGIApp:
    """The model server app over `state` (config, script queue and recordings)."""
    app = Starlette(routes=ROUTES, exception_handlers={404: unknown_route, 405: unknown_route})
    app.state.server = state
    return Gate(app, state)


class Gate:
    """Record the request, give it an `x-request-id`, and enforce the API key if one is set."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{uuid.uuid4().hex}"
        body, receive = await _buffered(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.state.record(
            RecordedRequest(
                method=scope["method"],
                path=scope["path"],
                query=dict(parse_qsl(scope["query_string"].decode("latin-1"))),
                headers=headers,
                body=_parsed(body),
                request_id=request_id,
            )
        )

        async def send_tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                if not any(name.lower() == b"x-request-id" for name, _ in raw):
                    raw.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": raw}
            await send(message)

        rejection = self._rejection(headers.get("authorization"))
        if rejection is not None:
            await rejection(scope, receive, send_tagged)
            return
        await self.app(scope, receive, send_tagged)

    def _rejection(self, authorization: str | None) -> JSONResponse | None:
        expected = self.state.config.api_key
        if expected is None or authorization == f"Bearer {expected}":
            return None
        presented = (authorization or "").removeprefix("Bearer ").strip()
        if not presented:
            return error_response(
                HttpError(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    code="invalid_api_key",
                )
            )
        return error_response(HttpError.invalid_api_key(presented))


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body; the returned `receive` replays it, then passes through."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _parsed(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
