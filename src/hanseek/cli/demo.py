"""`hanseek demo`: the bundled demo data."""

from __future__ import annotations

import typer

app = typer.Typer(help="Bundled demo data.", no_args_is_help=True)


@app.command("load")
def load() -> None:
    """Load every feature's demo data into the database (skips what is already there)."""
    from hanseek.api.state import AppState
    from hanseek.cli.common import console, open_db, settings
    from hanseek.demo import load_all

    s = settings()
    with open_db(s) as db:
        state = AppState(s, db)
        with console.status("loading demo data…"):
            results = load_all(state)
        for feature, counts in results.items():
            console.print(f"[bold]{feature}[/]: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
