"""`hanseek` command line (typer + rich): one sub-command group per feature."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer
from pydantic import ValidationError
from pydantic_settings.exceptions import SettingsError
from rich.markup import escape

from hanseek import __version__
from hanseek.cli import db, demo, encode, eval_cmd, feed, images, keywords, models, sentiment, serve, train
from hanseek.cli.common import err_console
from hanseek.config import is_settings_error, settings_error_message
from hanseek.store.errors import StoreError

app = typer.Typer(
    name="hanseek",
    help="hanseek: Korean content understanding — feed, search, word weights, sentiment.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hanseek {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Options before any command (only --version); the help text is the app's own."""


app.command("serve")(serve.serve)
app.command("encode")(encode.encode)
app.add_typer(db.app, name="db")
app.add_typer(demo.app, name="demo")
app.add_typer(models.app, name="models")
app.add_typer(train.app, name="train")
app.add_typer(eval_cmd.app, name="eval")
app.add_typer(feed.app, name="feed")
app.add_typer(images.app, name="images")
app.add_typer(keywords.app, name="keywords")
app.add_typer(sentiment.app, name="sentiment")


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (`kill`, a supervisor stopping the job) unwinds like Ctrl-C: the `finally` blocks run,
    so the embedded database a command started is stopped, a `pg_dump` child is killed and partial
    files are removed. By default SIGTERM ended the process on the spot, leaving all three until a
    later command cleaned up. A second SIGTERM during the clean-up ends the process at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt


def main() -> None:
    """The console script. A file that cannot be read or written, or is not UTF-8 text, is the
    user's to fix: say which and why in one line (exit 1) instead of a traceback. Commands check
    what they can up front; this catches what they could not foresee. So is a StoreError (database
    unreachable, malformed URL, a data dir that cannot be used) from any command, as `hanseek db` does."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except (ValidationError, SettingsError) as e:
        if not is_settings_error(e):
            raise
        # soft_wrap: one line at any terminal width, as promised (rich wraps at 80 columns otherwise)
        err_console.print(
            f"[red]error:[/red] {escape(settings_error_message(e))}", highlight=False, soft_wrap=True
        )
        raise SystemExit(1) from None
    except StoreError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    except UnicodeDecodeError as e:
        # No byte offset: the decoder's is within the chunk it was given, not the file.
        err_console.print(f"[red]error:[/red] a file is not UTF-8 text ({e.reason})")
        raise SystemExit(1) from None
    except OSError as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        raise SystemExit(1) from None
