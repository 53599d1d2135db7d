"""OpenAI-shaped error responses and request-body parsing shared by every route."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from tests.model_server.steps import HttpError


def error_response(error: HttpError) -> JSONResponse:
    """`{"error": {...}}` with the error's status and headers (the `openai` client reads both)."""
    return JSONResponse(error.body(), status_code=error.status, headers=dict(error.headers))


def invalid_request(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> JSONResponse:
    return error_response(HttpError(status, message, code=code, param=param))


class BadRequest(Exception):
    """Raised while reading a request; the route turns it into its response."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 like OpenAI's for anything else."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as e:
        raise BadRequest(
            invalid_request(
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly.)"
            )
        ) from e
    if not isinstance(body, dict):
        raise BadRequest(invalid_request("The request body must be a JSON object."))
    return body


def require(body: dict[str, Any], name: str) -> Any:
    """A required body field, or 400 missing_required_parameter naming it."""
    if body.get(name) is None:
        raise BadRequest(
            invalid_request(
                f"Missing required parameter: '{name}'.",
                param=name,
                code="missing_required_parameter",
            )
        )
    return body[name]


def not_found(message: str, *, param: str | None = None) -> JSONResponse:
    return invalid_request(message, param=param, status=404)
