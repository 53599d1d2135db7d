"""A body that is not a JSON object gets a 422 that says a JSON object is expected, and how."""

from __future__ import annotations

import pytest

JSON_WITHOUT_ITS_TYPE = (
    "body: a JSON object is expected, with the header Content-Type: application/json "
    "(this request's content type: {})"
)


class TestBodyThatIsNotAJsonObject:
    @pytest.mark.parametrize("path", ["/api/threads", "/api/tasks"])
    async def test_json_sent_as_curl_d_sends_it_is_422_naming_the_header(
        self, client, alice, path
    ) -> None:
        # `curl -d '{...}'` without -H 'content-type: application/json' sends this type.
        headers = {**alice, "content-type": "application/x-www-form-urlencoded"}
        response = await client.post(path, content=b'{"title":"Groceries"}', headers=headers)
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "ValidationError"
        assert body["detail"] == JSON_WITHOUT_ITS_TYPE.format("application/x-www-form-urlencoded")

    async def test_a_body_with_no_content_type_is_422_saying_none_was_sent(
        self, client, alice
    ) -> None:
        response = await client.post("/api/tasks", content=b'{"title":"x"}', headers=alice)
        assert response.status_code == 422
        assert response.json()["detail"] == JSON_WITHOUT_ITS_TYPE.format("none")

    async def test_json_that_is_not_an_object_is_422_asking_for_an_object(
        self, client, alice
    ) -> None:
        response = await client.post("/api/tasks", json=["buy milk"], headers=alice)
        assert response.status_code == 422
        assert response.json()["detail"] == "body: a JSON object is expected"

    async def test_other_validation_errors_keep_naming_the_field(self, client, alice) -> None:
        response = await client.post("/api/tasks", json={"title": "x", "color": 1}, headers=alice)
        assert response.status_code == 422
        assert response.json()["detail"].startswith("color: ")
