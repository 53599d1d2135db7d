"""Jobs look at every thread: each test here gets a database of its own, so counts are exact."""

from collections.abc import Callable

import pytest

from app.config import Settings


@pytest.fixture
def settings_factory(
    settings_factory: Callable[..., Settings], private_database: str
) -> Callable[..., Settings]:
    def _make(**overrides: object) -> Settings:
        return settings_factory(**{"DATABASE_URL": private_database, **overrides})

    return _make
