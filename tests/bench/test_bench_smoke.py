"""Smoke tests of the benchmark harness (`python -m bench`): the pieces run and agree.

They check the harness, never a performance target: timings on a shared machine are not
something a test can assert.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bench import compaction, env, items, memory_workloads
from bench.__main__ import parse_args
from bench.report import Row, render_table, write_json
from bench.stats import percentile, rotated, summarize
from bench.throughput import w3_w4


def test_items_are_responses_shaped_and_sized() -> None:
    history = items.history(random.Random(0), 60)
    assert len(history) == 60
    assert items.is_user(history[0])
    assert {"function_call", "function_call_output", "message"} <= {i.get("type") for i in history}
    for item in history:
        size = len(json.dumps(item, ensure_ascii=False).encode())
        assert items.MIN_BYTES - 64 <= size <= items.MAX_BYTES


def test_turns_are_batched_like_the_runner() -> None:
    rng = random.Random(1)
    assert [len(b) for b in items.turn(rng, tool=False)] == [1, 1]
    assert [len(b) for b in items.turn(rng, tool=True)] == [1, 2, 1]


def test_stats() -> None:
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([0, 10], 95) == pytest.approx(9.5)
    assert summarize([0.001, 0.002, 0.003])["median_ms"] == pytest.approx(2)
    assert rotated(["A", "B", "C"], 1) == ["B", "C", "A"]


def test_only_w4_also_runs_w3() -> None:
    assert parse_args(["--only", "w4"]).selected == {"w3", "w4"}
    with pytest.raises(SystemExit):
        parse_args(["--only", "w99"])


async def test_single_conversation_workloads_run(tmp_path: Path) -> None:
    names = ["A", "B", "T"]
    rows1, raw1 = await memory_workloads.w1_get_items(names, tmp_path, None, reps=2)
    rows2, _ = await memory_workloads.w2_turn_writes(names, tmp_path, None, reps=2)
    rows5, raw5 = await memory_workloads.w5_prune(tmp_path, reps=1)
    assert raw1["errors"] == []
    assert raw5["errors"] == []
    assert {r.system for r in rows1} == {"A", "B", "T", "T*"}
    assert {r.system for r in rows2} == set(names)
    assert all(r.median_ms and r.median_ms > 0 for r in rows1 + rows2 + rows5)


@pytest.mark.slow
def test_throughput_runs_in_spawned_workers(tmp_path: Path) -> None:
    rows, raw = w3_w4(["A", "T"], tmp_path, None, modes=((1, 4, 3), (1, 6, 2), (2, 4, 3)), reps=1)
    assert all(r.value.startswith("err 0, lost 0") for r in rows if r.workload == "3")
    assert raw["runs"]["T/2p/4c"][0]["turns"] == 12
    assert raw["runs"]["T/1p/6c"][0]["turns"] == 12
    assert all(run[0]["fd_peak_per_process"] for run in raw["runs"].values())


def test_report_table_and_json(tmp_path: Path) -> None:
    rows = [Row("1", "get_items()", "T", 1.0, 2.0, ratio=0.4, ratio_of="p95/B", met=True, note="n")]
    text = render_table(rows)
    assert "0.40x p95/B" in text
    assert "yes" in text
    assert "[1] 1 get_items() T: n" in text
    path = write_json(tmp_path, {"machine": {"nproc": 2}, "x": float("nan")}, rows)
    document = json.loads(path.read_text())
    assert document["x"] is None
    assert document["rows"][0]["system"] == "T"
    assert (tmp_path / "latest.json").read_text() == path.read_text()


async def test_users_data_workload_runs_at_a_tiny_size(test_database, tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    from bench.env import Database
    from bench.w10 import w10
    from bench.w10_seed import Shape

    database = Database(
        url=test_database.url,
        conninfo=make_url(test_database.url).set(drivername="postgresql").render_as_string(False),
        source="test",
    )
    shape = Shape(users=3, threads_per_user=4, messages_per_thread=5, eraser_threads=6)
    rows, raw = await w10(tmp_path, database, shape, search_reps=1)
    assert raw["rebuild"]["messages"] == shape.messages == 90
    assert raw["rebuild"]["threads"] == shape.threads == 18
    assert {
        label: s["n"] for label, s in raw["search"].items() if label != "page 2 (common word)"
    } == {
        "rare word": 1,
        "mid word": 1,
        "common word": 1,
        "two words (and)": 1,
        "phrase": 1,
    }
    erased = raw["erase"]["result"]
    assert (erased["threads"], erased["messages"], erased["tasks"]) == (6, 30, 10)
    assert (erased["memory_files"], erased["quarantined_files"]) == (6, 1)
    assert {r.measure for r in rows} >= {"export 6 threads", "erase user, 6 threads"}
    growth = raw["growth"]  # the same requests on a database holding only the measured user
    assert set(growth["messages, deep page"]) == {"full", "empty"}
    assert all(len(side["ms"]) == 1 for measure in growth.values() for side in measure.values())
    assert sum(1 for r in rows if r.ratio_of == "p95/empty") == len(growth)


@pytest.mark.slow
async def test_the_compaction_workload_runs(tmp_path: Path, private_database: str) -> None:
    database = env.Database(private_database, env.libpq(private_database), "test")
    rows, raw = await compaction.w13(tmp_path, database, turns=8, model_reps=1)
    assert raw["outcomes"]  # the 4-item turns passed the cap of 12, and were summarized
    assert set(raw["outcomes"]) == {"made"}
    tokens = [raw[f"model_summary_{size}"]["tokens"][0] for size in compaction.SUMMARY_SIZES]
    assert tokens[0][0] < tokens[1][0] < tokens[2][0]  # the previous summary is input
    assert [r.measure for r in rows][-1] == "model summary, previous 3,900 chars"
