"""A plug-in whose import fails, as one with a missing dependency does."""

from __future__ import annotations

import threadkeeper_missing_dependency  # noqa: F401  # the point: this module does not exist
