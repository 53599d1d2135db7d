"""Inserting a table model's row with one Core INSERT, not through the ORM's unit of work.

A turn inserts two rows on its hot path (its `turns` row, each message). Adding them to the
session and flushing ran the unit of work (change tracking, dependency sort, identity map,
the object's refresh bookkeeping) for one row at a time: more of the worker's CPU than the
INSERT itself. The row is built as before (its Python defaults apply), then its mapped
columns are sent as they are; the object stays outside the session, which none of these
callers reads it through (the session does not expire on commit).

`insert_from` writes a row only when another statement's CTE returned one (a guarded write
in one round trip, see `messages.append_message`).
"""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import SQLModel


def row_insert(row: SQLModel) -> sa.Insert:
    """The INSERT of `row`: every mapped column, as the object holds it."""
    table, values = _columns(row)
    return table.insert().values({column.key: value for column, value in values})


def insert_from(row: SQLModel, source: sa.CTE) -> sa.Insert:
    """An INSERT of `row` once per row `source` returns: none, and nothing is written."""
    table, values = _columns(row)
    selected = sa.select(*(sa.literal(value, column.type) for column, value in values))
    return table.insert().from_select(
        [column.key for column, _ in values], selected.select_from(source)
    )


def _columns(row: SQLModel) -> tuple[sa.Table, list[tuple[sa.Column[Any], Any]]]:
    mapper = sa.inspect(type(row))
    table = cast(sa.Table, mapper.local_table)
    return table, [(prop.columns[0], getattr(row, prop.key)) for prop in mapper.column_attrs]
