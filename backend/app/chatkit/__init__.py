"""The ChatKit protocol (`POST /chatkit`) on the same threads, messages, memory and turns as
the REST API, served by the official `openai-chatkit` package's `ChatKitServer`.

- `store`: ChatKit's `Store` on PostgreSQL, scoped to the request's user; log messages are
  ChatKit items (rendered by `items`), other ChatKit items live in `chatkit_items`.
- `server`: the `ChatKitServer`: `respond()` follows the turn the REST send would run
  (`TurnRunner`), translated into ChatKit's events by `translate`; stop and retry map to the
  turn service's own.
- `router`: the endpoint: bearer auth, refusals as ChatKit errors, keep-alive pings, and a
  client that aborts the stream (ChatKit's stop button) stops the turn.
"""
