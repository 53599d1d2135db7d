"""Fixtures: a ChatKit client per user over the running app."""

from __future__ import annotations

import pytest

from tests.chatkit.client import ChatKitClient


@pytest.fixture
def alice_kit(client, alice) -> ChatKitClient:
    return ChatKitClient(client, alice)


@pytest.fixture
def bob_kit(client, bob) -> ChatKitClient:
    return ChatKitClient(client, bob)
