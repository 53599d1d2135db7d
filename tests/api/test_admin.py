"""Admin endpoints: admin claim required; the same operations as the CLI."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import age_thread, thread_row, thread_with_turns


@pytest.fixture
def settings_factory(settings_factory, private_database):
    """Jobs look at every thread: a database of this test's own keeps the counts exact."""

    def _make(**overrides):
        return settings_factory(**{"DATABASE_URL": private_database, **overrides})

    return _make


ADMIN_CALLS = [
    ("GET", "/api/admin/sessions/stats"),
    ("GET", "/api/admin/sessions/verify"),
    ("GET", "/api/admin/sessions/{id}"),
    ("POST", "/api/admin/sessions/{id}/prune"),
    ("POST", "/api/admin/sessions/{id}/clear"),
    ("POST", "/api/admin/sessions/{id}/rebuild"),
    ("POST", "/api/admin/sessions/prune"),
    ("POST", "/api/admin/sessions/cleanup"),
    ("POST", "/api/admin/sessions/vacuum"),
    ("POST", "/api/admin/jobs/cleanup/run"),
    ("GET", "/api/admin/maintenance-runs"),
]


@pytest.fixture
def admin(auth_for) -> dict[str, str]:
    return auth_for("ops", admin=True)


class TestAdminAccess:
    @pytest.mark.parametrize(("method", "path"), ADMIN_CALLS)
    async def test_non_admin_token_is_403_and_no_token_401(
        self, client, alice, method, path
    ) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that only ops may look")
        url = path.format(id=thread_id)
        forbidden = await client.request(method, url, headers=alice)
        assert forbidden.status_code == 403
        assert forbidden.json()["error"] == "ForbiddenError"
        assert (await client.request(method, url)).status_code == 401
        # Nothing happened to the thread's memory.
        items = (await client.get(f"/api/threads/{thread_id}", headers=alice)).json()
        assert items["message_count"] == 2


class TestAdminOperations:
    async def test_stats_and_show(self, client, alice, admin, running) -> None:
        thread_id = await thread_with_turns(client, alice, "add task count me")
        stats = (await client.get("/api/admin/sessions/stats", headers=admin)).json()
        shown = (await client.get(f"/api/admin/sessions/{thread_id}", headers=admin)).json()
        assert (stats["sessions"], stats["total_items"], stats["average_items"]) == (1, 4, 4.0)
        # Stats are the bookkeeping summed: one thread's recorded bytes, exactly.
        assert stats["bytes_on_disk"] == shown["bytes"]
        assert (stats["over_cap"], stats["expired"]) == (0, 0)
        assert shown["items"] == shown["file_items"] == 4
        assert shown["memory_state"] == "active"
        assert shown["file_exists"] is True
        assert (
            await client.get(f"/api/admin/sessions/{uuid.uuid4()}", headers=admin)
        ).status_code == 404

    async def test_cleanup_dry_run_changes_nothing_then_cleanup_runs(
        self, client, alice, admin, running
    ) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that admins clean")
        await age_thread(running.sessionmaker, thread_id, days=40)
        dry = (await client.post("/api/admin/sessions/cleanup?dry_run=true", headers=admin)).json()
        assert dry["status"] == "succeeded"
        assert dry["counts"]["would_delete"] == 1
        assert (await thread_row(running.sessionmaker, thread_id)).memory_state == "active"
        done = (await client.post("/api/admin/sessions/cleanup", headers=admin)).json()
        assert done["counts"]["deleted"] == 1
        assert (await thread_row(running.sessionmaker, thread_id)).memory_state == "expired"
        runs = (await client.get("/api/admin/maintenance-runs?job=cleanup", headers=admin)).json()[
            "data"
        ]
        assert [r["trigger"] for r in runs[:2]] == ["admin", "admin"]
        assert runs[0]["counts"]["deleted"] == 1

    async def test_clear_then_rebuild(self, client, alice, admin, running) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that the cat is grey")
        cleared = await client.post(f"/api/admin/sessions/{thread_id}/clear", headers=admin)
        assert cleared.json()["deleted_file"] is True
        row = await thread_row(running.sessionmaker, thread_id)
        assert (row.memory_state, row.memory_item_count) == ("empty", 0)
        rebuilt = await client.post(f"/api/admin/sessions/{thread_id}/rebuild", headers=admin)
        assert rebuilt.json()["items"] == 2
        shown = (await client.get(f"/api/admin/sessions/{thread_id}", headers=admin)).json()
        assert shown["file_items"] == 2

    async def test_prune_dry_run_changes_nothing(self, client, alice, admin, running) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that 1", "remember that 2")
        response = await client.post(
            f"/api/admin/sessions/{thread_id}/prune?dry_run=true", headers=admin
        )
        assert response.json() == {"dry_run": True, "would_check": 1}
        assert (await thread_row(running.sessionmaker, thread_id)).memory_item_count == 4

    async def test_absurd_age_limit_is_422_not_a_failed_job(self, client, admin) -> None:
        response = await client.post(
            "/api/admin/sessions/cleanup?older_than_days=1000000000", headers=admin
        )
        assert response.status_code == 422
        assert "older_than_days" in response.json()["detail"]

    async def test_unknown_job_is_404(self, client, admin) -> None:
        response = await client.post("/api/admin/jobs/reboot/run", headers=admin)
        assert response.status_code == 404
        assert "cleanup" in response.json()["detail"]
