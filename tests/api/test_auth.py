"""Bearer tokens: every way a token can be wrong is a 401 with a JSON error."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.auth import TokenService

SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def hs256(claims: dict, secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def future(minutes: int = 5) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def unsigned(claims: dict) -> str:
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def pem_pair(kind: str) -> tuple[bytes, str]:
    key = (
        rsa.generate_private_key(65537, 2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


class TestRejectedTokens:
    @pytest.mark.parametrize(
        ("token", "reason"),
        [
            (None, "Missing bearer token"),
            ("not-a-jwt", "Malformed token"),
            (hs256({"sub": "eve", "exp": datetime.now(UTC) - timedelta(seconds=5)}), "expired"),
            (
                hs256(
                    {"sub": "eve", "exp": future()},
                    secret="another-secret-of-sufficient-length-000",
                ),
                "signature",
            ),
            (unsigned({"sub": "eve", "exp": int(future().timestamp())}), "'none'"),
            (hs256({"exp": future()}), "'sub'"),
            (hs256({"sub": "eve"}), "'exp'"),
            (hs256({"sub": "", "exp": future()}), "'sub'"),
        ],
        ids=[
            "missing",
            "malformed",
            "expired",
            "wrong-signature",
            "alg-none",
            "no-sub",
            "no-exp",
            "empty-sub",
        ],
    )
    async def test_401_with_reason(self, client, token, reason) -> None:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        response = await client.get("/api/threads", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "UnauthorizedError"
        assert reason in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_wrong_scheme_is_401(self, client, alice) -> None:
        token = alice["Authorization"].split()[1]
        response = await client.get("/api/threads", headers={"Authorization": f"Basic {token}"})
        assert response.status_code == 401


class TestAudienceAndIssuer:
    @pytest.fixture
    def settings(self, settings_factory):
        return settings_factory(
            AUTH_JWT_AUDIENCE="threadkeeper", AUTH_JWT_ISSUER="https://idp.example"
        )

    async def test_wrong_audience_or_issuer_is_401(self, client) -> None:
        base = {"sub": "eve", "exp": future(), "iss": "https://idp.example"}
        wrong_aud = hs256({**base, "aud": "someone-else"})
        no_aud = hs256(base)
        wrong_iss = hs256({**base, "aud": "threadkeeper", "iss": "https://evil.example"})
        for token, reason in [(wrong_aud, "audience"), (no_aud, "'aud'"), (wrong_iss, "issuer")]:
            response = await client.get(
                "/api/threads", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401, token
            assert reason in response.json()["detail"]

    async def test_matching_audience_and_issuer_is_accepted(
        self, client, tokens: TokenService
    ) -> None:
        token = tokens.issue("frank")
        response = await client.get("/api/threads", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200


class TestPublicKeyTokens:
    @pytest.fixture(params=["rsa", "ec"])
    def key_pair(self, request) -> tuple[bytes, str]:
        return pem_pair(request.param)

    @pytest.fixture
    def settings(self, settings_factory, key_pair):
        return settings_factory(AUTH_JWT_PUBLIC_KEY=key_pair[1], AUTH_JWT_SECRET=None)

    async def test_signed_by_the_key_is_accepted(self, client, key_pair) -> None:
        private, public = key_pair
        alg = "RS256" if "RSA" in public or len(public) > 300 else "ES256"
        token = jwt.encode({"sub": "grace", "exp": future()}, private, algorithm=alg)
        response = await client.get("/api/threads", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text

    async def test_public_key_used_as_hmac_secret_is_refused(self, client, key_pair) -> None:
        # The classic algorithm-confusion attack: sign HS256 with the public key's bytes.
        claims = {"sub": "mallory", "exp": int(future().timestamp())}
        header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
        import hashlib
        import hmac

        signing_input = header + b"." + body
        sig = hmac.new(key_pair[1].encode(), signing_input, hashlib.sha256).digest()
        token = (signing_input + b"." + base64.urlsafe_b64encode(sig).rstrip(b"=")).decode()
        response = await client.get("/api/threads", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


class TestUsers:
    async def test_user_is_created_on_first_sight_and_reused(self, client, alice, running) -> None:
        first = await running.user_id(alice)
        await client.get("/api/threads", headers=alice)
        assert await running.user_id(alice) == first

    async def test_admin_claim_is_read_from_the_configured_name(self, settings_factory) -> None:
        tokens = TokenService.from_settings(settings_factory(AUTH_ADMIN_CLAIM="is_staff"))
        token = tokens.issue("ops", admin=True)
        assert jwt.decode(token, options={"verify_signature": False})["is_staff"] is True
        assert tokens.verify(token).is_admin is True
        assert tokens.verify(tokens.issue("user")).is_admin is False
