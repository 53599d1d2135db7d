"""The Grafana dashboard queries only metrics the service exports, and is what its script
writes (edit deploy/grafana/make_dashboard.py, then run it)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from tests.factories import create_thread
from tests.sse import send

GRAFANA = Path(__file__).resolve().parent.parent / "deploy" / "grafana"


def dashboard_script():
    spec = importlib.util.spec_from_file_location("make_dashboard", GRAFANA / "make_dashboard.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def queried_metrics(dashboard: dict) -> set[str]:
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return {name for expr in exprs for name in re.findall(r"threadkeeper_[a-z_]+", expr)}


class TestDashboard:
    def test_the_committed_json_is_what_the_script_writes(self) -> None:
        assert (GRAFANA / "threadkeeper.json").read_text() == dashboard_script().render()

    async def test_every_metric_it_queries_is_exposed(self, client, alice, running) -> None:
        from app.scheduler.registry import run_job

        await send(client, await create_thread(client, alice), "add task chart me", alice)
        await run_job("cleanup", running.state["job_context"], trigger="test")
        exposed = (await client.get("/metrics")).text
        dashboard = json.loads((GRAFANA / "threadkeeper.json").read_text())
        queried = queried_metrics(dashboard)
        assert {
            "threadkeeper_memory_items_per_session",
            "threadkeeper_memory_idle_sessions",
            "threadkeeper_memory_recoveries_total",
        } <= queried  # the runbook's signals: rows per session, idle sessions, rebuilds
        missing = {name for name in queried if not re.search(rf"^{name}[{{ ]", exposed, re.M)}
        assert missing == set()

    async def test_idle_sessions_count_live_memory_without_a_turn_for_a_day(
        self, client, alice, running
    ) -> None:
        from tests.factories import age_thread

        quiet = await create_thread(client, alice)
        await send(client, quiet, "add task gather dust", alice)
        before = _gauge((await client.get("/metrics")).text, "threadkeeper_memory_idle_sessions")
        await age_thread(running.sessionmaker, quiet, days=2)
        after = _gauge((await client.get("/metrics")).text, "threadkeeper_memory_idle_sessions")
        assert after == before + 1


def _gauge(text: str, name: str) -> float:
    (value,) = re.findall(rf"^{name} (\S+)$", text, re.M)
    return float(value)
