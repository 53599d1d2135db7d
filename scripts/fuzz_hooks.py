"""Schemathesis hooks for `make fuzz`: besides what the schema allows, send text PostgreSQL
cannot store.

A NUL character and a lone UTF-16 surrogate are valid JSON yet cannot be stored (NUL) or even
encoded as UTF-8 (a surrogate); both once made the API answer 500. Schemathesis's own
generator never produces a lone surrogate (its strings must encode as UTF-8) and rarely a
NUL, so each generated body and query may have one string replaced by such a value; the
run's `not_a_server_error` check then proves every endpoint refuses them cleanly.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import strategies as st

UNSTORABLE_JSON = ("a\x00b", "\x00", "a\ud800b", "\udcff")
# A URL carries bytes: a lone surrogate cannot be percent-encoded at all, a NUL can (%00).
UNSTORABLE_QUERY = ("a\x00b", "\x00")


def _with_one_of(values: dict[str, Any], bad: tuple[str, ...]) -> st.SearchStrategy[Any]:
    keys = sorted(k for k, v in values.items() if isinstance(v, str))
    if not keys:
        return st.just(values)
    poisoned = st.builds(
        lambda key, value: {**values, key: value}, st.sampled_from(keys), st.sampled_from(bad)
    )
    return st.one_of(st.just(values), poisoned)


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    del context
    return _with_one_of(body, UNSTORABLE_JSON) if isinstance(body, dict) else st.just(body)


@schemathesis.hook
def flatmap_query(context: Any, query: Any) -> st.SearchStrategy[Any]:
    del context
    return _with_one_of(query, UNSTORABLE_QUERY) if isinstance(query, dict) else st.just(query)
