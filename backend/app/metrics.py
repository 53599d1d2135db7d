"""Prometheus metrics: what operators alert on (see deploy/prometheus/alerts.yml).

Counters and histograms live in prometheus-client's default registry, as the library
intends. Gauges about stored memory are refreshed from PostgreSQL bookkeeping when /metrics
is scraped, so every worker and pod reports the same totals. With several uvicorn workers,
`python -m app serve --workers N` prepares prometheus-client's multiprocess mode itself (a
fresh DATA_DIR/metrics before the workers start), so /metrics merges every worker's counters
whichever worker answers; an operator's own PROMETHEUS_MULTIPROC_DIR is used as it is.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
MEMORY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

HTTP_REQUESTS = Counter(
    "threadkeeper_http_requests_total",
    "HTTP requests by route and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "threadkeeper_http_request_duration_seconds",
    "HTTP request latency (streams: whole stream)",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
TURNS = Counter("threadkeeper_turns_total", "Chat turns by outcome", ["status"])
TURN_LATENCY = Histogram(
    "threadkeeper_turn_duration_seconds",
    "Time from a turn's start to its saved reply",
    buckets=LATENCY_BUCKETS,
)
LOOP_LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
LOOP_LAG = Histogram(
    "threadkeeper_event_loop_lag_seconds",
    "How much later than asked a 50 ms timer fired on the event loop (time the loop was blocked)",
    buckets=LOOP_LAG_BUCKETS,
)
MEMORY_READ = Histogram(
    "threadkeeper_memory_read_seconds", "Agent memory reads (get_items)", buckets=MEMORY_BUCKETS
)
MEMORY_WRITE = Histogram(
    "threadkeeper_memory_write_seconds",
    "Agent memory writes (add_items, prune)",
    buckets=MEMORY_BUCKETS,
)
PRUNES = Counter("threadkeeper_memory_prunes_total", "Sessions cut back to the cap")
RECOVERIES = Counter(
    "threadkeeper_memory_recoveries_total", "Memory rebuilt from the log", ["reason"]
)
RECOVERY_REASONS = (
    "corrupt",
    "missing",
    "expired",
    "behind",
    "ahead",
    "stale",
    "interrupted turn",
)
for _reason in RECOVERY_REASONS:  # export zeros, so rate() and alerts work from the start
    RECOVERIES.labels(_reason)
LIMIT_REFUSALS = Counter(
    "threadkeeper_limit_refusals_total",
    "Turns refused by a fair-use limit (LIMIT_* settings), by limit",
    ["limit"],
)
for _limit in ("turns_per_minute", "running_turns", "daily_tokens", "open_streams"):
    LIMIT_REFUSALS.labels(_limit)
TURN_EVENT_BATCHES = Counter(
    "threadkeeper_turn_event_batches_total",
    "Batches of turn events written to PostgreSQL (one row each, for resuming anywhere)",
)
THREADS_FREED_AT_START = Counter(
    "threadkeeper_leases_freed_at_start_total",
    "Thread leases freed at startup because this node's previous start held them",
)
SUMMARIES = Counter(
    "threadkeeper_memory_summaries_total",
    "Summaries of pruned turns (compaction): made, failed (error or timeout; the prune stands "
    "and a later prune retries), skipped (thread busy or changed; retried later)",
    ["status"],
)
for _status in ("made", "failed", "skipped"):
    SUMMARIES.labels(_status)
SUMMARY_SECONDS = Histogram(
    "threadkeeper_memory_summary_seconds",
    "Time to make one summary (the summarizer's run, off the request path)",
    buckets=LATENCY_BUCKETS,
)
SUMMARY_TOKENS = Counter(
    "threadkeeper_memory_summary_tokens_total",
    "Model tokens spent on summaries",
    ["kind"],
)
for _kind in ("input", "output"):
    SUMMARY_TOKENS.labels(_kind)
JOB_RUNS = Counter("threadkeeper_job_runs_total", "Maintenance job runs", ["job", "status"])
ACTIVE_SESSIONS = Gauge(
    "threadkeeper_memory_active_sessions",
    "Threads with a live memory file",
    multiprocess_mode="max",
)
MEMORY_BYTES = Gauge(
    "threadkeeper_memory_bytes", "Bytes of all memory files (bookkeeping)", multiprocess_mode="max"
)
IDLE_SESSIONS = Gauge(
    "threadkeeper_memory_idle_sessions",
    "Threads with live memory but no turn for a day (bookkeeping)",
    multiprocess_mode="max",
)
SESSIONS_OVER_CAP = Gauge(
    "threadkeeper_memory_sessions_over_cap",
    "Threads whose memory holds more items than AGENT_SESSION_MAX_MESSAGES (bookkeeping)",
    multiprocess_mode="max",
)
ITEMS_PER_SESSION = Gauge(
    "threadkeeper_memory_items_per_session",
    "Average items per live session",
    multiprocess_mode="max",
)
JOB_LAST_SUCCESS = Gauge(
    "threadkeeper_job_last_success_timestamp_seconds",
    "When each job last succeeded (any pod)",
    ["job"],
    multiprocess_mode="max",
)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess(directory: Path) -> Path:
    """Before uvicorn starts several workers: multiprocess mode in a fresh, empty directory.

    Set in the environment the workers inherit; prometheus-client reads it when a worker
    imports it. Files of an earlier run are removed (their counters would be added).
    Returns the directory in use (an operator's own PROMETHEUS_MULTIPROC_DIR wins).
    """
    if os.environ.get(MULTIPROC_ENV):
        return Path(os.environ[MULTIPROC_ENV])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def mark_worker_exited() -> None:
    """In multiprocess mode, drop this worker's live gauges from the merged view."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # untyped in the library


def render_metrics() -> tuple[bytes, str]:
    """The exposition text, merged across workers in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in the library
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (bounded label values)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """The matched route's template (`/api/threads/{thread_id}`), or "unmatched".

    Taken from what the router matched, never rebuilt from the path: substituting parameter
    values back once turned `/api/admin/jobs/admin/run` into `/api/a{name}/jobs/dmin/run`.
    FastAPI keeps a route of an included router with its own path (without the prefix) in
    `scope["route"]`, and the full template in the context it matched it with.
    """
    matched = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(matched, "path", None) or getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"
