"""Damaged or mismatched models and settings are refused where they enter, in one line without paths;
serving reads text as training did; loads of one model do not hold up the others (session 18)."""

from __future__ import annotations

import json
import shutil
import threading
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from hanseek.cli import app
from hanseek.config import Settings
from hanseek.sentiment import registry
from hanseek.sentiment import service as service_module
from hanseek.sentiment.registry import ModelCard
from hanseek.sentiment.service import SentimentService
from hanseek.sentiment.transformer import TransformerClassifier, TransformerConfig
from hanseek.text.analyzer import KoreanAnalyzer

from ..clitext import flat


@pytest.fixture()
def svc(tmp_path: Path, kiwi: KoreanAnalyzer) -> SentimentService:
    return SentimentService(Settings(data_dir=tmp_path / "data"), analyzer=kiwi)


def save_transformer(root: Path, name: str, base_dir: Path, weight: Any = None, bias: float = 0.0) -> Path:
    """A transformer model on `base_dir` saved under `root/name` with the given head."""
    clf = TransformerClassifier.from_base(
        base_dir, TransformerConfig(base_model=str(base_dir), max_length=32)
    )
    rng = np.random.default_rng(0)
    clf.weight = (rng.normal(size=clf.dim) if weight is None else np.asarray(weight)).astype(np.float32)
    clf.bias = bias
    card = ModelCard(name=name, kind="transformer", domains=["movie"], train_size=1, base_model=str(base_dir))
    return registry.save_model(root, clf, card)


def _copy_demo(svc: SentimentService, name: str) -> Path:
    svc.predict(["좋다"])  # trains the demo baseline into this data dir
    copy = svc.root / name
    shutil.copytree(svc.root / "demo-baseline", copy)
    return copy


# -- 1. a transformer head with NaN or inf -------------------------------------------------------


@pytest.mark.parametrize(("weight_bad", "bias"), [(np.nan, 0.0), (np.inf, 0.0), (None, float("nan"))])
def test_a_transformer_head_that_is_not_finite_is_a_load_error(
    svc: SentimentService, tiny_bert_dir: Path, weight_bad: float | None, bias: float
) -> None:
    """Was loaded, and every answer's probability was NaN (null in the API)."""
    weight = np.ones(32, dtype=np.float32)
    if weight_bad is not None:
        weight[3] = weight_bad
    save_transformer(svc.root, "nan-head", tiny_bert_dir, weight, bias)
    with pytest.raises(registry.ModelLoadError, match="not finite") as info:
        svc.predict(["좋다"], "nan-head")
    assert "head.safetensors" in str(info.value) and str(svc.root) not in str(info.value)


def test_predict_json_never_prints_nan(
    tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path / "d"))
    root = tmp_path / "d" / "models" / "sentiment"
    save_transformer(root, "nan-head", tiny_bert_dir, np.full(32, np.nan, dtype=np.float32))
    r = CliRunner().invoke(app, ["sentiment", "predict", "좋다", "--model", "nan-head", "--json"])
    assert r.exit_code == 1, r.output
    assert "NaN" not in r.output and "not finite" in flat(r.output) and "Traceback" not in r.output


# -- 3. serving reads text as training did ----------------------------------------------------


@pytest.mark.slow
def test_unicode_form_and_spacing_do_not_change_a_transformer_answer(e5_model_dir: Path) -> None:
    """Was 0.6978 (NFD), 0.9333 (NFC), 0.9314 (spaced) for one review with a trained e5 head."""
    clf = TransformerClassifier.from_base(e5_model_dir, TransformerConfig(max_length=32))
    clf.weight = np.random.default_rng(1).normal(size=clf.dim).astype(np.float32) * 0.2
    nfc = "재밌어요 최고"
    forms = [nfc, unicodedata.normalize("NFD", nfc), "  재밌어요\t최고  ", "재밌어요 \n 최고"]
    p = clf.predict_proba(forms)
    assert abs(float(p[0]) - 0.5) > 0.01  # the head says something
    np.testing.assert_allclose(p, p[0], atol=1e-6)


# -- 4. `default` refuses a card that cannot be read ----------------------------------------------


@pytest.mark.parametrize("card", ["{not json", '{"name": "half"}'])
def test_set_default_refuses_a_card_that_does_not_parse(tmp_path: Path, card: str) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / registry.CARD).write_text(card)
    with pytest.raises(registry.ModelLoadError, match=r"card\.json that cannot be read"):
        registry.set_default(tmp_path, "half")
    assert registry.default_name(tmp_path) is None and not (tmp_path / "DEFAULT").exists()


def test_cli_default_refuses_a_card_that_does_not_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path / "d"))
    root = tmp_path / "d" / "models" / "sentiment"
    (root / "half").mkdir(parents=True)
    (root / "half" / registry.CARD).write_text("{not json")
    r = CliRunner().invoke(app, ["sentiment", "default", "half"])
    assert r.exit_code == 1 and "cannot be read" in flat(r.output), r.output
    assert "Traceback" not in r.output and registry.default_name(root) is None


# -- 5. baseline.json settings are checked at load -------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("char_ngram", [4, 1], "char_ngram is [4, 1]"),
        ("char_ngram", [0, 4], "char_ngram is [0, 4]"),
        ("morph_ngram", [1, 99], "morph_ngram is [1, 99]"),
        ("char_ngram", [1], "char_ngram is [1]"),
        ("char_ngram", 3, "char_ngram"),
        ("min_df", 0, "min_df is 0"),
        ("C", -1, "C is -1"),
        # C is an inverse regularisation strength: 0 is not a weaker penalty but no model at all.
        ("C", 0, "C is 0: expected a positive number"),
        ("surprise", 1, "surprise"),
    ],
)
def test_baseline_settings_that_no_model_can_have_are_a_load_error(
    svc: SentimentService, key: str, value: object, fragment: str
) -> None:
    copy = _copy_demo(svc, "odd")
    settings = json.loads((copy / "baseline.json").read_text())
    settings[key] = value
    (copy / "baseline.json").write_text(json.dumps(settings))
    with pytest.raises(
        registry.ModelLoadError, match=r"cannot load sentiment model 'odd': baseline.json"
    ) as e:
        svc.predict(["좋다"], "odd")
    assert fragment in str(e.value)


# -- 6. --freeze-layers beyond the encoder -------------------------------------------------------


def test_freeze_layers_beyond_the_encoder_is_refused_before_training(
    tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was taken as "all layers": trainable_params 0, no fine-tuning, and no word of it."""
    clf = TransformerClassifier.from_base(
        tiny_bert_dir, TransformerConfig(base_model=str(tiny_bert_dir), freeze_layers=3)
    )

    def no_work(*_a: object, **_k: object) -> None:
        raise AssertionError("encoded before refusing")

    monkeypatch.setattr(clf, "embed", no_work)
    with pytest.raises(ValueError, match="freeze_layers is 3 but the encoder has 2 layers"):
        clf.fit(["좋다", "별로"], np.array([1, 0]))


def test_cli_train_refuses_freeze_layers_beyond_the_encoder(
    tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path / "d"))
    ok = tmp_path / "ok.txt"
    ok.write_text("".join(f"{i % 2}\t리뷰 {i}번 {'좋다' if i % 2 else '별로'}\n" for i in range(60)), "utf-8")
    args = ["sentiment", "train", "--data", str(tmp_path / "none"), "-d", "x", "--file", f"x={ok}"]
    args += ["--model", "transformer", "--base-model", str(tiny_bert_dir), "--freeze-layers", "99"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1 and "the encoder has 2 layers" in flat(r.output), r.output
    assert (
        "Traceback" not in r.output
        and not (tmp_path / "d" / "models" / "sentiment" / "x-transformer").exists()
    )


# -- 7. an empty --model ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", " "])
def test_cli_predict_refuses_an_empty_model_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Was: the default model answered (the API answers 422 for "model": "")."""
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path / "d"))
    r = CliRunner().invoke(app, ["sentiment", "predict", "좋다", "--model", name])
    assert r.exit_code == 1 and "invalid model name" in flat(r.output), r.output
    assert not (tmp_path / "d" / "models" / "sentiment" / "demo-baseline").exists()


# -- 8. load errors in one line, without the server's paths --------------------------------------


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda d: (d / "card.json").write_text("{not json"), "card.json is not a valid model card"),
        (
            lambda d: (d / "card.json").write_text('{"name": "x"}'),
            "card.json is not a valid model card (kind",
        ),
        (lambda d: (d / "baseline.json").unlink(), "baseline.json: No such file or directory"),
        (lambda d: (d / "weights.npz").write_bytes(b"PK\x03\x04 cut"), "cannot load sentiment model 'dmg': "),
    ],
)
def test_a_load_error_names_the_model_and_file_in_one_line_without_paths(
    svc: SentimentService, damage: Any, fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    copy = _copy_demo(svc, "dmg")
    damage(copy)
    with (
        caplog.at_level("INFO", logger="hanseek.sentiment"),
        pytest.raises(registry.ModelLoadError) as info,
    ):
        svc.predict(["좋다"], "dmg")
    msg = str(info.value)
    assert fragment in msg and msg.startswith("cannot load sentiment model 'dmg': ")
    assert "\n" not in msg and str(svc.root) not in msg and str(copy.resolve()) not in msg
    assert any(r.exc_info for r in caplog.records)  # the whole exception is in the server's log


# -- 9. one model's load does not hold up the others ---------------------------------------------


def test_a_slow_load_does_not_hold_up_a_loaded_model_and_loads_once(
    svc: SentimentService, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy_demo(svc, "slow")
    svc.predict(["좋다"], "demo-baseline")  # loaded
    real = service_module.BaselineClassifier.load
    release, started = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_load(directory: Path, analyzer: Any) -> Any:
        calls.append(directory.name)
        if directory.name == "slow":
            started.set()
            assert release.wait(30)
        return real(directory, analyzer)

    monkeypatch.setattr(service_module.BaselineClassifier, "load", staticmethod(slow_load))
    loaders = [threading.Thread(target=svc.predict, args=(["좋다"], "slow")) for _ in range(2)]
    for t in loaders:
        t.start()
    try:
        assert started.wait(10)
        done = threading.Event()
        other = threading.Thread(target=lambda: (svc.predict(["좋다"], "demo-baseline"), done.set()))
        other.start()
        assert done.wait(10), "a request for a loaded model waited for another model's load"
    finally:
        release.set()
        for t in loaders:
            t.join(30)
    assert calls == ["slow"]  # two requests at once, one load
    assert svc.predict(["좋다"], "slow")[0].name == "slow"


# -- damaged files are named ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "damaged", "keep"),
    [
        ("baseline", "weights.npz", 1000),
        ("baseline", "vocab.json.gz", 0),
        ("baseline", "vocab.json.gz", 200),
        ("transformer", "head.safetensors", 50),
        ("transformer", "transformer.json", 0),
        ("transformer", "encoder/model.safetensors", 100),
    ],
)
def test_a_damaged_file_is_named_in_the_message(
    svc: SentimentService, tiny_bert_dir: Path, kind: str, damaged: str, keep: int
) -> None:
    """A cut or empty file said only its reader's words ("File is not a zip file", "Expecting value:
    line 1 column 1") though the docs promise the file is named (session 19, docs walk)."""
    if kind == "baseline":
        model = _copy_demo(svc, "broken")
    else:
        model = save_transformer(svc.root, "broken", tiny_bert_dir)
    path = model / damaged
    assert path.is_file(), sorted(p.name for p in model.rglob("*"))
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(registry.ModelLoadError) as info:
        svc.predict(["좋다"], "broken")
    message = str(info.value)
    assert message.startswith(f"cannot load sentiment model 'broken': {damaged.split('/')[0]}"), message
    assert str(svc.root) not in message and "\n" not in message
