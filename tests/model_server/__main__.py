"""`python -m tests.model_server --port N`: the model server as a process, for benchmarks.

Prints one line when it listens, `ready base_url=http://127.0.0.1:N/v1 ...`, then serves until
SIGINT/SIGTERM. Streams are async sleeps on one event loop (uvloop when installed), so one
process holds thousands of slow streams; the descriptor limit is raised to its hard cap for
the same reason. Run from the repo root with PYTHONPATH=backend:. (the grammar lives there).
"""

from __future__ import annotations

import argparse
import resource
import sys

from tests.model_server.server import serve_forever
from tests.model_server.state import DEFAULT_MODELS, ServerConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.model_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--mode", choices=("grammar", "fixed"), default="grammar")
    parser.add_argument(
        "--tokens",
        type=int,
        default=None,
        help="fixed: deltas per reply (default 10); grammar: at most this many deltas",
    )
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between deltas")
    parser.add_argument(
        "--first-token-delay", type=float, default=0.0, help="seconds before the first delta"
    )
    parser.add_argument("--api-key", default=None, help="when set, other keys get 401")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated")
    parser.add_argument("--context-window", type=int, default=None, help="max prompt tokens")
    parser.add_argument(
        "--keep",
        type=int,
        default=10_000,
        help="recorded requests and stored responses to keep (memory stays flat)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    config = ServerConfig(
        api_key=args.api_key,
        models=tuple(m for m in args.models.split(",") if m),
        mode=args.mode,
        tokens=args.tokens,
        token_delay=args.token_delay,
        first_token_delay=args.first_token_delay,
        context_window=args.context_window,
    )

    def ready(base_url: str) -> None:
        sys.stdout.write(
            f"ready base_url={base_url} mode={config.mode} tokens={config.tokens} "
            f"token_delay={config.token_delay} first_token_delay={config.first_token_delay}\n"
        )
        sys.stdout.flush()

    serve_forever(config, host=args.host, port=args.port, keep=args.keep, on_ready=ready)


if __name__ == "__main__":
    main()
