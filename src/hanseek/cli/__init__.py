"""`hanseek` command line (typer + rich): one sub-command group per feature."""

from __future__ import annotations

import typer

from hanseek.cli import db, demo, encode, eval_cmd, feed, images, keywords, models, sentiment, serve, train

app = typer.Typer(
    name="hanseek",
    help="hanseek: Korean content understanding — feed, search, word weights, sentiment.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
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


def main() -> None:
    app()
