"""`hanseek serve`: the API and web pages on the embedded (or external) database."""

from __future__ import annotations

import typer


def serve(
    host: str | None = typer.Option(None, help="Bind address (default HANSEEK_HOST or 127.0.0.1)"),
    port: int | None = typer.Option(None, help="Port (default HANSEEK_PORT or 8000)"),
    demo: bool | None = typer.Option(None, "--demo/--no-demo", help="Load the demo data when empty"),
) -> None:
    """Serve the API and the web pages until Ctrl-C."""
    import uvicorn

    from hanseek.api.app import create_app
    from hanseek.api.logging import configure_logging
    from hanseek.cli.common import settings

    s = settings()
    if host:
        s.host = host
    if port:
        s.port = port
    if demo is not None:
        s.load_demo = demo
    configure_logging()
    app = create_app(s)
    uvicorn.run(app, host=s.host, port=s.port, log_level="warning", timeout_graceful_shutdown=10)
