"""The command line: `python -m app {serve,migrate,token,chat,sessions}` (from the repo root)."""

from app.cli.app import main

__all__ = ["main"]
