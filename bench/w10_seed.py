"""Seeding for workload 10: an existing deployment of W10's size, written in SQL.

Everything is generated inside PostgreSQL (generate_series, one INSERT ... SELECT per table),
so two million messages take a couple of minutes, not the hours row-by-row inserts would.
The text follows a Zipf-like law over an 8,000-word vocabulary (a word of rank r appears
about 1/r as often as the commonest), so searches range from rare words to words in nearly
every message, as in real chat logs. It is written at the revision just before full-text
search, so that migration and the rebuild of the vectors are measured on existing rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg

VOCABULARY = 8_000
SENTENCES = 50_000
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "su",
    "ta",
    "ri",
    "po",
    "ve",
    "zu",
    "an",
    "el",
    "or",
    "it",
    "um",
    "ba",
    "de",
    "fi",
    "go",
    "hu",
]


@dataclass(frozen=True)
class Shape:
    users: int
    threads_per_user: int
    messages_per_thread: int
    eraser_threads: int  # the user erased at the end (their messages too: same per thread)

    @property
    def threads(self) -> int:
        return self.users * self.threads_per_user + self.eraser_threads

    @property
    def messages(self) -> int:
        return self.threads * self.messages_per_thread


USER_ID_BASE = uuid.UUID("00000000-0000-4000-8000-000000000000").int


def user_id(n: int) -> uuid.UUID:
    """User n (0 is the one erased), as the SQL names them: deterministic, so the workload
    can find them."""
    return uuid.UUID(int=USER_ID_BASE + n)


ERASER = 0


def word(rank: int) -> str:
    """The vocabulary's word of `rank` (1 is the commonest), as the SQL builds it."""
    i = rank - 1
    n = len(SYLLABLES)
    return SYLLABLES[i % n] + SYLLABLES[(i // n) % n] + SYLLABLES[(i // n // n) % n]


def _vocabulary_sql() -> str:
    syllables = "ARRAY[" + ",".join(f"'{s}'" for s in SYLLABLES) + "]"
    n = len(SYLLABLES)
    return f"""
    CREATE TEMP TABLE w10_pool AS
    WITH v AS (
        SELECT array_agg(
            ({syllables})[1 + i % {n}] || ({syllables})[1 + (i / {n}) % {n}]
            || ({syllables})[1 + (i / {n * n}) % {n}] ORDER BY i) AS words
        FROM generate_series(0, {VOCABULARY - 1}) i
    )
    SELECT s AS i,
           -- `+ 0 * k` ties the aggregate to the inner query (else it would be the outer's)
           (SELECT string_agg(v.words[floor(exp(random() * ln({VOCABULARY})))::int + 0 * k], ' ')
            FROM generate_series(1, 4 + s % 17) k) AS text
    FROM v, generate_series(0, {SENTENCES - 1}) s;
    CREATE INDEX ON w10_pool (i);
    """


_USERS = (
    "INSERT INTO users (id, subject, created_at) SELECT "
    "('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, "
    "'w10-user-' || n, now() FROM generate_series(0, %(users)s) n"
)
# Thread t belongs to user 0 (the eraser) for its first eraser_threads, then to users 1.. in
# blocks of threads_per_user; its title is two words of a sentence.
_THREADS = (
    "INSERT INTO threads (id, user_id, title, created_at, updated_at, last_activity_at, "
    "message_count, memory_state, memory_item_count, memory_bytes, agent) "
    "SELECT md5('w10-thread-' || t)::uuid, "
    "('00000000-0000-4000-8000-' || lpad(to_hex(CASE WHEN t < %(e)s THEN 0 "
    "ELSE 1 + (t - %(e)s) / %(tpu)s END), 12, '0'))::uuid, "
    "split_part(p.text, ' ', 1) || ' ' || split_part(p.text, ' ', 2), "
    "now() - interval '1 day' * (t %% 300), now(), now() - interval '1 minute' * t, "
    "%(per)s, 'empty', 0, 0, 'todo' "
    "FROM generate_series(0, %(threads)s - 1) t JOIN w10_pool p ON p.i = (t * 31) %% %(s)s"
)
# Message g is the (g mod per)-th of thread g / per: two sentences of the pool.
_MESSAGES = (
    "INSERT INTO messages (id, thread_id, role, content, created_at, metadata) "
    "SELECT gen_random_uuid(), md5('w10-thread-' || (g / %(per)s))::uuid, "
    "CASE WHEN g %% 2 = 0 THEN 'user' ELSE 'assistant' END, a.text || ' ' || b.text, "
    "now() - interval '1 day' * ((g / %(per)s) %% 300) + interval '1 second' * (g %% %(per)s), "
    "'{}'::jsonb FROM generate_series(0, %(messages)s - 1) g "
    "JOIN w10_pool a ON a.i = (g::bigint * 7919) %% %(s)s "
    "JOIN w10_pool b ON b.i = (g::bigint * 104729 + 13) %% %(s)s"
)
_TASKS = (
    "INSERT INTO tasks (id, user_id, title, notes, done, created_at, updated_at) "
    "SELECT gen_random_uuid(), u.id, 'task ' || k, '', k %% 3 = 0, now(), now() "
    "FROM users u, generate_series(1, 10) k"
)


def seed(conninfo: str, shape: Shape) -> None:
    """Users, threads, messages and tasks at the pre-search schema (one transaction)."""
    params = {
        "users": shape.users,
        "threads": shape.threads,
        "messages": shape.messages,
        "e": shape.eraser_threads,
        "tpu": shape.threads_per_user,
        "per": shape.messages_per_thread,
        "s": SENTENCES,
    }
    with psycopg.connect(conninfo) as conn:
        conn.execute("SET statement_timeout = 0")
        conn.execute("SELECT setseed(0.10)")
        conn.execute(_vocabulary_sql())
        for statement in (_USERS, _THREADS, _MESSAGES, _TASKS):
            conn.execute(statement, params)
        conn.commit()
        conn.execute("ANALYZE")
