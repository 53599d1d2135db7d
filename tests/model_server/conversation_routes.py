"""Routes of the Conversations API (`/v1/conversations...`) over the in-memory store."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.model_server.conversations import (
    DEFAULT_LIMIT,
    MAX_ITEMS_PER_CREATE,
    MAX_LIMIT,
    Conversation,
    add_items,
    delete_item,
    list_items,
)
from tests.model_server.errors import BadRequest, invalid_request, json_object, not_found
from tests.model_server.model_routes import server_state


def _conversation(request: Request) -> Conversation:
    conversation_id = request.path_params["conversation_id"]
    conversation = server_state(request).conversations.get(conversation_id)
    if conversation is None:
        raise BadRequest(not_found(f"Conversation with id '{conversation_id}' not found."))
    return conversation


def _items(body: dict[str, Any], *, required: bool) -> list[dict[str, Any]]:
    items = body.get("items")
    if items is None and not required:
        return []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise BadRequest(invalid_request("Invalid 'items': expected an array.", param="items"))
    if len(items) > MAX_ITEMS_PER_CREATE:
        raise BadRequest(
            invalid_request(
                f"Invalid 'items': array too long. Expected an array with maximum length "
                f"{MAX_ITEMS_PER_CREATE}, but got an array with length {len(items)} instead.",
                param="items",
                code="array_above_max_length",
            )
        )
    return items


async def create_conversation(request: Request) -> JSONResponse:
    try:
        body = await json_object(request)
        items = _items(body, required=False)
    except BadRequest as e:
        return e.response
    metadata = body.get("metadata") or {}
    return JSONResponse(server_state(request).conversations.create(items, metadata).public())


async def get_conversation(request: Request) -> JSONResponse:
    try:
        return JSONResponse(_conversation(request).public())
    except BadRequest as e:
        return e.response


async def update_conversation(request: Request) -> JSONResponse:
    try:
        conversation = _conversation(request)
        body = await json_object(request)
    except BadRequest as e:
        return e.response
    conversation.metadata = body.get("metadata") or {}
    return JSONResponse(conversation.public())


async def delete_conversation(request: Request) -> JSONResponse:
    try:
        conversation = _conversation(request)
    except BadRequest as e:
        return e.response
    server_state(request).conversations.delete(conversation.id)
    return JSONResponse({"id": conversation.id, "object": "conversation.deleted", "deleted": True})


async def create_items(request: Request) -> JSONResponse:
    try:
        conversation = _conversation(request)
        items = _items(await json_object(request), required=True)
    except BadRequest as e:
        return e.response
    return JSONResponse(add_items(conversation, items))


async def get_items(request: Request) -> JSONResponse:
    try:
        conversation = _conversation(request)
        order, limit = _list_params(request)
    except BadRequest as e:
        return e.response
    after = request.query_params.get("after")
    page = list_items(conversation, order=order, limit=limit, after=after)
    if page is None:
        return not_found(f"Item with id '{after}' not found.", param="after")
    return JSONResponse(page)


def _list_params(request: Request) -> tuple[str, int]:
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest(
            invalid_request("Invalid 'order': expected 'asc' or 'desc'.", param="order")
        )
    try:
        limit = int(request.query_params.get("limit", DEFAULT_LIMIT))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(
            invalid_request(f"Invalid 'limit': expected 1 to {MAX_LIMIT}.", param="limit")
        )
    return order, limit


async def get_item(request: Request) -> JSONResponse:
    try:
        conversation = _conversation(request)
    except BadRequest as e:
        return e.response
    item_id = request.path_params["item_id"]
    for item in conversation.items:
        if item["id"] == item_id:
            return JSONResponse(item)
    return not_found(f"Item with id '{item_id}' not found.")


async def remove_item(request: Request) -> JSONResponse:
    """Delete one item; like the real API, the answer is the conversation."""
    try:
        conversation = _conversation(request)
    except BadRequest as e:
        return e.response
    item_id = request.path_params["item_id"]
    if not delete_item(conversation, item_id):
        return not_found(f"Item with id '{item_id}' not found.")
    return JSONResponse(conversation.public())


ROUTES = [
    Route("/v1/conversations", create_conversation, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}", get_conversation, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}", update_conversation, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}", delete_conversation, methods=["DELETE"]),
    Route("/v1/conversations/{conversation_id}/items", create_items, methods=["POST"]),
    Route("/v1/conversations/{conversation_id}/items", get_items, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}/items/{item_id}", get_item, methods=["GET"]),
    Route("/v1/conversations/{conversation_id}/items/{item_id}", remove_item, methods=["DELETE"]),
]
