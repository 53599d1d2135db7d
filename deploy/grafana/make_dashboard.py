"""Writes threadkeeper.json, the Grafana dashboard (run it after changing a panel).

Kept as code so each panel's query reads plainly; `tests/test_dashboards.py` checks that the
JSON is what this script writes and that every metric it queries is exported by /metrics.
Stored-memory gauges come from PostgreSQL bookkeeping, so every pod reports the same value:
max() avoids counting it once per pod; counters are summed over pods (and workers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("threadkeeper.json")

# (title, unit, [(legend, PromQL)], width) per panel, in rows of the dashboard.
ROWS: list[tuple[str, list[tuple[str, str, list[tuple[str, str]], int]]]] = [
    (
        "Agent memory",
        [
            (
                "Rows per session (average items in live memory)",
                "short",
                [
                    ("items per session", "max(threadkeeper_memory_items_per_session)"),
                    ("sessions over the cap", "max(threadkeeper_memory_sessions_over_cap)"),
                ],
                8,
            ),
            (
                "Sessions, and those without recent activity (no turn for a day)",
                "short",
                [
                    ("live sessions", "max(threadkeeper_memory_active_sessions)"),
                    ("without recent activity", "max(threadkeeper_memory_idle_sessions)"),
                ],
                8,
            ),
            ("Memory storage", "bytes", [("bytes", "max(threadkeeper_memory_bytes)")], 8),
            (
                "Provider ids missing: memory rebuilt from the log (reasoning items and "
                "provider item ids are not in the log), by reason",
                "short",
                [
                    (
                        "{{reason}}",
                        "sum by (reason) (increase(threadkeeper_memory_recoveries_total[1h]))",
                    )
                ],
                12,
            ),
            (
                "Memory read / write p95",
                "s",
                [
                    (
                        "read p95",
                        "histogram_quantile(0.95, sum by (le) "
                        "(rate(threadkeeper_memory_read_seconds_bucket[5m])))",
                    ),
                    (
                        "write p95",
                        "histogram_quantile(0.95, sum by (le) "
                        "(rate(threadkeeper_memory_write_seconds_bucket[5m])))",
                    ),
                ],
                12,
            ),
        ],
    ),
    (
        "Turns and nodes",
        [
            (
                "Turns per second by outcome",
                "reqps",
                [("{{status}}", "sum by (status) (rate(threadkeeper_turns_total[5m]))")],
                8,
            ),
            (
                "Turn duration p50 / p95",
                "s",
                [
                    (
                        "p50",
                        "histogram_quantile(0.5, sum by (le) "
                        "(rate(threadkeeper_turn_duration_seconds_bucket[5m])))",
                    ),
                    (
                        "p95",
                        "histogram_quantile(0.95, sum by (le) "
                        "(rate(threadkeeper_turn_duration_seconds_bucket[5m])))",
                    ),
                ],
                8,
            ),
            (
                "HTTP 409 / 5xx per second",
                "reqps",
                [
                    (
                        "{{status}}",
                        'sum by (status) (rate(threadkeeper_http_requests_total{status=~"409|5.."}[5m]))',
                    )
                ],
                8,
            ),
            (
                "Turn event batches written per second (resume anywhere)",
                "ops",
                [("batches", "sum(rate(threadkeeper_turn_event_batches_total[5m]))")],
                12,
            ),
            (
                "Leases freed when a node restarted after a crash",
                "short",
                [("freed", "sum(increase(threadkeeper_leases_freed_at_start_total[1h]))")],
                12,
            ),
        ],
    ),
    (
        "Maintenance",
        [
            (
                "Job runs by status",
                "short",
                [
                    (
                        "{{job}} {{status}}",
                        "sum by (job, status) (increase(threadkeeper_job_runs_total[1d]))",
                    )
                ],
                12,
            ),
            (
                "Hours since each job last succeeded (any pod)",
                "h",
                [
                    (
                        "{{job}}",
                        "(time() - max by (job) "
                        "(threadkeeper_job_last_success_timestamp_seconds)) / 3600",
                    )
                ],
                12,
            ),
        ],
    ),
]


def _panel(
    pid: int, title: str, unit: str, targets: list[tuple[str, str]], x: int, y: int, w: int
) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (legend, expr) in enumerate(targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, pid = 0, 1
    for row_title, row in ROWS:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid, y, x = pid + 1, y + 1, 0
        for title, unit, targets, width in row:
            if x + width > 24:
                x, y = 0, y + 8
            panels.append(_panel(pid, title, unit, targets, x, y, width))
            pid, x = pid + 1, x + width
        y += 8
    return {
        "title": "Threadkeeper",
        "uid": "threadkeeper",
        "tags": ["threadkeeper"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
