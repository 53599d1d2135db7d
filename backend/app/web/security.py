"""Security headers for the pages a browser renders: Content-Security-Policy and friends.

The policy is what keeps a bug from becoming an exploit: scripts only from this origin (no
inline script), fetches only to this origin and the configured front ends, and for the chat
page, Trusted Types, so the only code allowed to turn a string into HTML is the sanitizer.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence

# Headers every page and static file gets: no MIME sniffing, no URL (or token) in Referer.
BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def build_csp(directives: Mapping[str, Sequence[str]]) -> str:
    """Render `{directive: [sources]}` as a policy string, in the given order."""
    return "; ".join(" ".join([name, *sources]).strip() for name, sources in directives.items())


def page_csp(front_end_origins: Sequence[str]) -> str:
    """The chat page's policy; `front_end_origins` are the deployment's other front ends.

    They may embed the page (frame-ancestors), which is how a host app hands it a token,
    and the page may connect to them; nothing else outside this origin is reachable.
    """
    origins = list(front_end_origins)
    return build_csp(
        {
            "default-src": ["'none'"],
            "script-src": ["'self'"],
            "style-src": ["'self'"],
            "img-src": ["'self'", "data:"],
            "font-src": ["'self'"],
            "connect-src": ["'self'", *origins],
            "base-uri": ["'none'"],
            "form-action": ["'none'"],
            "frame-ancestors": ["'self'", *origins],
            # Any `innerHTML = string` throws: only DOMPurify's policy may create HTML.
            "require-trusted-types-for": ["'script'"],
            "trusted-types": ["dompurify"],
        }
    )


def docs_csp(html: str) -> str:
    """A policy for FastAPI's docs pages: local assets only, their inline bootstrap by hash.

    Swagger UI and ReDoc style elements inline and draw icons from data: URLs; ReDoc runs its
    search index in a blob: worker.
    """
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    ]
    return build_csp(
        {
            "default-src": ["'none'"],
            "script-src": ["'self'", *hashes],
            "style-src": ["'self'", "'unsafe-inline'"],
            "img-src": ["'self'", "data:"],
            "font-src": ["'self'", "data:"],
            "connect-src": ["'self'"],
            "worker-src": ["'self'", "blob:"],
            "base-uri": ["'none'"],
            "frame-ancestors": ["'self'"],
        }
    )
