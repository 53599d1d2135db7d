"""The alert rules only reference metrics the service really exposes."""

from __future__ import annotations

import re
from pathlib import Path

from tests.factories import create_thread
from tests.sse import send

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yml"


class TestAlertRules:
    async def test_every_metric_in_the_rules_is_exposed(self, client, alice, running) -> None:
        from app.scheduler.registry import run_job

        await send(client, await create_thread(client, alice), "add task alert me", alice)
        await run_job("cleanup", running.state["job_context"], trigger="test")
        exposed = (await client.get("/metrics")).text
        referenced = set(re.findall(r"threadkeeper_[a-z_]+", RULES.read_text()))
        assert referenced, "no metrics referenced"
        missing = {name for name in referenced if not re.search(rf"^{name}[{{ ]", exposed, re.M)}
        assert missing == set()

    def test_rules_name_each_runbook_threshold(self) -> None:
        text = RULES.read_text()
        for needle in ["500e6", "> 0.1", "26 * 3600", "> 10000", "recoveries"]:
            assert needle in text
