"""`hanseek train`: train models (SimCSE text encoders)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from hanseek.cli.common import console, err_console, open_db, parse_range, progress, settings

app = typer.Typer(help="Train text encoders (SimCSE).", no_args_is_help=True)


@app.command("simcse")
def simcse(
    name: str = typer.Option(
        ..., "--name", "-n", help="Name of the new model (saved under data/models/NAME)"
    ),
    texts: Path | None = typer.Option(
        None, "--texts", exists=True, dir_okay=False, help="Training text file, one text per line"
    ),
    from_posts: bool = typer.Option(False, "--from-posts", help="Train on the posts in the database"),
    pairs: Path | None = typer.Option(
        None, "--pairs", exists=True, dir_okay=False, help="Supervised: anchor<TAB>positive[<TAB>negative]"
    ),
    base: str | None = typer.Option(None, "--base", help="Starting model (default: the active model)"),
    max_texts: int | None = typer.Option(
        None, min=2, help="Use at most N texts (--texts: a seeded sample; --from-posts: the newest N)"
    ),
    max_length: int = typer.Option(32, min=4, max=512, help="Tokens per training text (shorter = faster)"),
    batch_size: int = typer.Option(32, min=2, help="Sentences per micro-batch (= in-batch negatives + 1)"),
    lr: float = typer.Option(3e-5, min=1e-12, max=1.0, help="Peak learning rate (linear warm-up and decay)"),
    steps: int = typer.Option(300, min=1, help="Optimizer steps"),
    temperature: float = typer.Option(0.05, min=1e-3, help="Softmax temperature of the contrastive loss"),
    freeze_embeddings: bool = typer.Option(True, help="Freeze the word embeddings (most of e5-small)"),
    grad_accum: int = typer.Option(1, min=1, help="Micro-batches per optimizer step"),
    eval_every: int = typer.Option(50, min=1, help="Validate every N steps and keep the best checkpoint"),
    eval_korsts: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Validation STS file (e.g. KorSTS train, not dev)"
    ),
    eval_korsts_pairs: int = typer.Option(300, min=1, help="Validation STS pairs used"),
    eval_parakqc: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="ParaKQC file for validation retrieval"
    ),
    eval_parakqc_sets: str | None = typer.Option(None, help="Validation paraphrase sets START:END"),
    select: str = typer.Option("mean", help="Checkpoint selection: mean | korsts | parakqc"),
    seed: int = typer.Option(42),
    threads: int | None = typer.Option(None, min=1, help="PyTorch CPU threads"),
    note: str = typer.Option("", help="Data description for the model card"),
    overwrite: bool = typer.Option(False, help="Replace an existing model of that name"),
    restart: bool = typer.Option(
        False, "--restart", help="Discard the checkpoint a killed run of this name left instead of resuming"
    ),
    register: bool = typer.Option(True, help="Record the model in the database catalogue"),
) -> None:
    """Unsupervised SimCSE (dropout noise, in-batch negatives) or supervised SimCSE from pairs."""
    from hanseek.encoders.base import EncoderError
    from hanseek.train.simcse import SimCSEConfig, StepInfo
    from hanseek.train.simcse_job import SimCSEJob, check_train_name, run_simcse
    from hanseek.train.sts_eval import check_rankable, load_korsts, load_parakqc

    if select not in ("mean", "korsts", "parakqc"):
        raise typer.BadParameter("select must be mean, korsts or parakqc")
    if sum((texts is not None, from_posts, pairs is not None)) > 1:
        raise typer.BadParameter("give one training source: --texts, --from-posts or --pairs")
    val_sts = val_pk = None
    try:
        check_train_name(name)  # before the database is opened or anything loads
        if eval_korsts is not None:
            val_sts = check_rankable(load_korsts(eval_korsts).head(eval_korsts_pairs), eval_korsts)
        if eval_parakqc is not None:
            val_pk = load_parakqc(eval_parakqc, parse_range(eval_parakqc_sets))
    except (EncoderError, OSError, UnicodeDecodeError, ValueError) as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)  # one line, path whole
        raise typer.Exit(2) from e
    job = SimCSEJob(
        name=name,
        config=SimCSEConfig(
            max_length=max_length,
            batch_size=batch_size,
            lr=lr,
            steps=steps,
            temperature=temperature,
            freeze_word_embeddings=freeze_embeddings,
            grad_accum=grad_accum,
            eval_every=eval_every,
            seed=seed,
            threads=threads,
        ),
        base=base,
        texts_file=texts,
        from_posts=from_posts,
        pairs_file=pairs,
        max_texts=max_texts,
        eval_korsts=val_sts,
        eval_parakqc=val_pk,
        select=select,  # type: ignore[arg-type]
        overwrite=overwrite,
        data_note=note,
        restart=restart,
    )
    s = settings()
    with progress() as bar:
        task = bar.add_task("SimCSE", total=steps, info="")
        last: dict[str, str] = {"score": "-"}
        first = [True]

        def on_step(info: StepInfo) -> None:
            if first[0] and info.step > 0:
                bar.console.log(f"resuming from the checkpoint at step {info.step} (--restart discards it)")
            first[0] = False
            if info.score is not None:
                last["score"] = f"{info.score:.4f}"
                # One line per validation, so logs (not only the live bar) show how training went.
                bar.console.log(f"step {info.step}: validation {info.score:.4f} {info.metrics or ''}")
            loss = "-" if info.loss != info.loss else f"{info.loss:.4f}"
            bar.update(task, completed=info.step, info=f"loss {loss}  val {last['score']}")

        try:
            if from_posts or register or overwrite:  # --overwrite checks what is stored
                with open_db(s) as db:
                    dest, summary = run_simcse(s, job, db=db, on_step=on_step)
            else:
                dest, summary = run_simcse(s, job, on_step=on_step)
        except (EncoderError, ValueError) as e:
            err_console.print(f"[red]error:[/red] {escape(str(e))}")
            raise typer.Exit(2) from e
        except FloatingPointError as e:  # the loss diverged: the run's settings, not a bug
            err_console.print(f"[red]error:[/red] {escape(str(e))}")
            raise typer.Exit(1) from e
    if summary["best_score"] is not None:
        best = f"best step {summary['best_step']}, score {summary['best_score']}"
    elif val_sts is None and val_pk is None:
        best = "no validation data: the last step is kept"
    else:
        best = "no validation score could be computed: the last step is kept"
    console.print(f"saved {escape(str(dest))} ({best})")
    console.print_json(json.dumps({k: summary[k] for k in ("best_step", "best_score", "train_seconds")}))
