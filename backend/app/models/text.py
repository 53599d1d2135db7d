"""Text that PostgreSQL can store: checked at the API boundary, so bad input is a 422.

PostgreSQL `text` and `jsonb` cannot hold a NUL character, and a lone UTF-16 surrogate
(`"\\ud800"` in JSON) cannot be encoded as UTF-8 at all. Both used to reach the database and
come back as a 500; here they are refused with a message that names the problem.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel
from pydantic_core import PydanticSerializationError

_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable_reason(text: str) -> str | None:
    """Why `text` cannot be stored, or None when it can."""
    if "\x00" in text:
        return "must not contain NUL characters (\\u0000)"
    if _SURROGATE.search(text):
        return "must not contain unpaired surrogate characters (\\ud800-\\udfff)"
    return None


def check_storable(text: str) -> str:
    """Pydantic validator: raises ValueError (a 422 naming the field) for unstorable text."""
    reason = unstorable_reason(text)
    if reason is not None:
        raise ValueError(reason)
    return text


def make_storable(text: str) -> str:
    """Replace what PostgreSQL cannot store with U+FFFD (for text we did not receive: model
    output, tool output), so a reply is never lost over one bad character."""
    if unstorable_reason(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text.replace("\x00", "\ufffd"))


def unstorable_in(value: Any) -> str | None:
    """Why some string in a JSON-like value (keys too) cannot be stored, or None."""
    if isinstance(value, str):
        return unstorable_reason(value)
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    return next((reason for item in items if (reason := unstorable_in(item))), None)


def make_storable_json(value: Any) -> Any:
    """`make_storable` applied to every string in a JSON-like value (for JSONB columns)."""
    if isinstance(value, str):
        return make_storable(value)
    if isinstance(value, dict):
        return {make_storable(str(k)): make_storable_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [make_storable_json(v) for v in value]
    return value


def make_storable_json_text(payload: BaseModel) -> str:
    """`payload` as JSON, with `make_storable` applied to its strings only when needed."""
    try:
        return payload.model_dump_json()
    except PydanticSerializationError:
        return json.dumps(make_storable_json(payload.model_dump(mode="json")), ensure_ascii=False)


StorableText = Annotated[str, AfterValidator(check_storable)]
