"""The results table on stdout and the JSON files under data/bench/.

This is the only module that prints: everything else returns rows and raw figures.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One line of the table: a measure of one system in one workload."""

    workload: str
    measure: str
    system: str
    median_ms: float | None = None
    p95_ms: float | None = None
    throughput: float | None = None  # per second (turns/s, ops/s)
    value: str = ""  # any other figure: descriptors, errors, counts
    ratio: float | None = None
    ratio_of: str = ""  # what the ratio compares, e.g. "p95 / B"
    target: str = ""
    met: bool | None = None
    note: str = ""


_COLUMNS = (
    ("W", 3),
    ("measure", 36),
    ("sys", 6),
    ("median ms", 10),
    ("p95 ms", 9),
    ("thru/s", 8),
    ("value", 24),
    ("ratio", 16),
    ("target", 21),
    ("met", 4),
)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def _cells(row: Row) -> list[str]:
    ratio = "-" if row.ratio is None else f"{_num(row.ratio, 2)}x {row.ratio_of}".strip()
    met = "" if row.met is None else ("yes" if row.met else "NO")
    return [
        row.workload,
        row.measure,
        row.system,
        _num(row.median_ms),
        _num(row.p95_ms),
        _num(row.throughput, 1),
        row.value,
        ratio,
        row.target,
        met,
    ]


def render_table(rows: list[Row]) -> str:
    """The rows as a fixed-width text table, notes listed underneath."""
    lines = [" ".join(name.ljust(width) for name, width in _COLUMNS).rstrip()]
    lines.append(" ".join("-" * width for _, width in _COLUMNS))
    notes: list[str] = []
    previous = None
    for row in rows:
        if previous is not None and row.workload != previous:
            lines.append("")
        previous = row.workload
        cells = _cells(row)
        if row.note:
            notes.append(
                f"[{len(notes) + 1}] {row.workload} {row.measure} {row.system}: {row.note}"
            )
            cells[1] = f"{cells[1]} [{len(notes)}]"
        lines.append(" ".join(c.ljust(w) for c, (_, w) in zip(cells, _COLUMNS, strict=True)))
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(line.rstrip() for line in lines)


def print_report(rows: list[Row], header: str, footer: list[str]) -> None:
    """Print the table (the one place this package writes to stdout)."""
    print(header)  # noqa: T201
    print(render_table(rows))  # noqa: T201
    for line in footer:
        print(line)  # noqa: T201
    sys.stdout.flush()


def _clean(value: Any) -> Any:
    """JSON has no NaN: missing figures become null."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(out_dir: Path, payload: dict[str, Any], rows: list[Row]) -> Path:
    """Write bench-<UTC timestamp>.json and latest.json; return the timestamped path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = _clean({**payload, "rows": [asdict(r) for r in rows]})
    text = json.dumps(document, indent=1, sort_keys=False)
    path = out_dir / f"bench-{stamp}.json"
    path.write_text(text)
    (out_dir / "latest.json").write_text(text)
    return path
