"""Threadkeeper's benchmark harness: `python -m bench` (or `make bench`).

It compares our memory store (T) with the SDK's own sessions built exactly as a user would
(A: one shared SQLite file, B: one file per conversation, C: SQLAlchemy on PostgreSQL), and the
service with the bare SDK. Every comparison is measured in one run with the systems
interleaved, so a noisy machine slows every side alike; results are medians, p95 and ratios.
Nothing here asserts an absolute target: the report says which targets were met.
"""
