"""`territory` with the service commands registered, for tests: python -m tests.api.cli ..."""

from __future__ import annotations

from api.commands import register
from optimizer.cli import app

register(app)

if __name__ == "__main__":
    app()
