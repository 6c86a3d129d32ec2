"""SentimentService and the model registry: train, save, default, fallback demo model, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hanseek.config import Settings
from hanseek.sentiment import registry
from hanseek.sentiment.datasets import DomainData
from hanseek.sentiment.registry import ModelNotFound
from hanseek.sentiment.service import SentimentService
from hanseek.sentiment.training import TrainOptions
from hanseek.text.analyzer import KoreanAnalyzer


def _small(d: DomainData, n: int) -> DomainData:
    return DomainData(d.name, d.train.sample(n, 1), d.dev.sample(200, 2), d.test.sample(300, 3), d.notes)


@pytest.fixture()
def svc(tmp_path: Path, kiwi: KoreanAnalyzer) -> SentimentService:
    return SentimentService(Settings(data_dir=tmp_path), analyzer=kiwi)


def test_train_save_predict_and_default(svc: SentimentService, game: DomainData) -> None:
    card = svc.train([_small(game, 1200)], TrainOptions(), name="game-small")
    assert card.kind == "baseline" and card.domains == ["game"]
    assert card.train_size == 1200 + 200  # fixed hyper-parameters: train + dev
    assert 0.62 < card.metrics["test/game"] <= 1.0
    assert svc.default_model() == "game-small"  # first model becomes the default
    assert [c.name for c in svc.cards()] == ["game-small"]
    used, preds = svc.predict(["그래픽 좋고 재밌어요 강추", "버그 투성이 환불했음"])
    assert used.name == "game-small"
    assert [p.label for p in preds] == ["positive", "negative"]
    for p in preds:
        assert 0.5 <= p.probability <= 1.0
        assert p.positive_probability == pytest.approx(
            p.probability if p.label == "positive" else 1 - p.probability, abs=1e-3
        )
    # A second model does not take over the default unless asked.
    svc.train([_small(game, 300)], TrainOptions(), name="game-tiny")
    assert svc.default_model() == "game-small"
    svc.set_default("game-tiny")
    assert svc.resolve().card.name == "game-tiny"
    svc.delete("game-tiny")
    assert svc.default_model() is None
    with pytest.raises(ModelNotFound):
        svc.resolve("game-tiny")


def test_unknown_and_invalid_names(svc: SentimentService) -> None:
    with pytest.raises(ModelNotFound):
        svc.predict(["좋다"], "nope")
    with pytest.raises(ValueError, match="invalid model name"):
        svc.predict(["좋다"], "../etc")
    with pytest.raises(ModelNotFound):
        svc.set_default("nope")


def test_reload_after_retrain(svc: SentimentService, game: DomainData) -> None:
    svc.train([_small(game, 300)], TrainOptions(), name="g")
    first = svc.resolve("g")
    assert svc.resolve("g") is first  # cached
    svc.train([_small(game, 500)], TrainOptions(), name="g")
    again = svc.resolve("g")
    assert again is not first and again.card.train_size == 700


def test_save_is_atomic_on_failure(tmp_path: Path) -> None:
    class Broken:
        kind = "baseline"

        def predict_proba(self, texts: list[str]) -> np.ndarray:
            raise AssertionError

        def save(self, directory: Path) -> None:
            (directory / "partial").write_text("x")
            raise OSError("disk full")

    card = registry.ModelCard(name="m", kind="baseline", domains=["x"], train_size=1)
    with pytest.raises(OSError):
        registry.save_model(tmp_path, Broken(), card)
    assert registry.list_cards(tmp_path) == [] and not (tmp_path / "m").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_the_default_is_readable_by_others_and_a_delete_waits_for_a_save(tmp_path: Path) -> None:
    import stat
    import threading
    import time

    from hanseek.encoders.model_store import file_lock
    from hanseek.files import shared_mode

    class Tiny:
        def save(self, directory: Path) -> None:
            (directory / "weights.bin").write_bytes(b"w")

    card = registry.ModelCard(name="m", kind="baseline", domains=["x"], train_size=1)
    registry.save_model(tmp_path, Tiny(), card)  # type: ignore[arg-type]
    registry.set_default(tmp_path, "m")
    # A server running as another OS user reads the DEFAULT file too (mkstemp alone gives 0600).
    assert stat.S_IMODE((tmp_path / "DEFAULT").stat().st_mode) == shared_mode()
    done = threading.Event()

    def delete() -> None:
        registry.delete_model(tmp_path, "m")
        done.set()

    with file_lock(tmp_path / ".m.lock"):  # a save of "m" is swapping its directory in
        t = threading.Thread(target=delete)
        t.start()
        time.sleep(0.2)
        assert not done.is_set() and (tmp_path / "m" / registry.CARD).is_file()
    t.join(timeout=10)
    assert done.is_set() and not (tmp_path / "m").exists() and registry.default_name(tmp_path) is None


def test_damaged_model_raises_load_error(svc: SentimentService) -> None:
    d = svc.root / "half"
    d.mkdir(parents=True)
    (d / "card.json").write_text("{not json")
    with pytest.raises(registry.ModelLoadError, match="half"):
        svc.predict(["좋다"], "half")
    assert [c.name for c in svc.cards()] == []  # an unreadable card is not listed


@pytest.mark.parametrize("damaged", ["vocab.json.gz", "weights.npz"])
def test_a_truncated_model_file_is_a_load_error(svc: SentimentService, damaged: str) -> None:
    """A cut gzip (EOFError) or zip (BadZipFile) is a model that cannot be loaded, not a crash."""
    import shutil

    svc.predict(["좋다"])  # trains the demo baseline into this data dir
    copy = svc.root / "cut"
    shutil.copytree(svc.root / "demo-baseline", copy)
    (copy / "card.json").write_text((copy / "card.json").read_text().replace("demo-baseline", "cut"))
    (copy / damaged).write_bytes((copy / damaged).read_bytes()[:200])
    with pytest.raises(registry.ModelLoadError, match="cut"):
        svc.predict(["좋다"], "cut")


def test_concurrent_saves_of_one_name_never_fail_or_leave_it_missing(tmp_path: Path) -> None:
    """Two savers of one name (e.g. server workers training the demo model at once) used to collide
    on a shared '.old' path, and readers saw no model between the two renames."""
    import threading

    from hanseek.sentiment.registry import ModelCard, save_model

    class Tiny:
        def save(self, directory: Path) -> None:
            (directory / "weights.bin").write_bytes(b"w" * 1000)

    root = tmp_path / "sentiment"
    card = ModelCard(name="busy", kind="baseline", domains=["movie"], train_size=1)
    save_model(root, Tiny(), card)  # type: ignore[arg-type]
    errors: list[BaseException] = []
    missing: list[int] = []
    done = threading.Event()

    def saver() -> None:
        try:
            for _ in range(40):
                save_model(root, Tiny(), card)  # type: ignore[arg-type]
        except BaseException as e:
            errors.append(e)

    def reader() -> None:
        while not done.is_set():
            if not (root / "busy" / "card.json").is_file():
                missing.append(1)

    threads = [threading.Thread(target=saver) for _ in range(2)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    assert errors == [] and missing == []
    assert sorted(p.name for p in root.iterdir()) == [".busy.lock", "busy"]  # no leftovers


def test_deleting_the_default_model_clears_the_default(tmp_path: Path) -> None:
    from hanseek.sentiment.registry import ModelCard, default_name, delete_model, save_model, set_default

    class Tiny:
        def save(self, directory: Path) -> None:
            (directory / "weights.bin").write_bytes(b"w")

    root = tmp_path / "sentiment"
    save_model(root, Tiny(), ModelCard(name="a", kind="baseline", domains=["movie"], train_size=1))  # type: ignore[arg-type]
    set_default(root, "a")
    delete_model(root, "a")
    save_model(root, Tiny(), ModelCard(name="a", kind="baseline", domains=["game"], train_size=1))  # type: ignore[arg-type]
    assert default_name(root) is None  # a new, unrelated "a" does not become the default


def test_a_delete_during_set_default_leaves_no_default_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`set_default` checked the card and wrote DEFAULT without the lock `delete_model` takes: a
    delete in between left DEFAULT naming the deleted model, and a later, unrelated model saved
    under that name became the default."""
    import contextlib
    import threading
    from collections.abc import Iterator

    from hanseek.sentiment.registry import ModelCard, default_name, delete_model, save_model, set_default

    class Tiny:
        def save(self, directory: Path) -> None:
            (directory / "weights.bin").write_bytes(b"w")

    root = tmp_path / "sentiment"
    save_model(root, Tiny(), ModelCard(name="a", kind="baseline", domains=["movie"], train_size=1))  # type: ignore[arg-type]
    checked, go = threading.Event(), threading.Event()
    real = registry.atomic_file

    @contextlib.contextmanager
    def after_the_check(*args: Any, **kwargs: Any) -> Iterator[Any]:
        checked.set()  # set_default found the card and is about to write DEFAULT
        assert go.wait(30)
        with real(*args, **kwargs) as fh:
            yield fh

    monkeypatch.setattr(registry, "atomic_file", after_the_check)
    setter = threading.Thread(target=set_default, args=(root, "a"))
    setter.start()
    assert checked.wait(30)
    deleter = threading.Thread(target=delete_model, args=(root, "a"))
    deleter.start()
    deleter.join(1.0)  # unlocked it is done by now; locked it waits for the DEFAULT write
    go.set()
    setter.join(30)
    deleter.join(30)
    assert not setter.is_alive() and not deleter.is_alive()
    assert not (root / "a").exists()
    assert not (root / "DEFAULT").exists() or (root / "DEFAULT").read_text().strip() != "a"
    save_model(root, Tiny(), ModelCard(name="a", kind="baseline", domains=["game"], train_size=1))  # type: ignore[arg-type]
    assert default_name(root) is None


def test_deleting_the_old_default_keeps_a_default_set_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`delete_model` read whether its model was the default before removing it and cleared DEFAULT
    after: a `set_default` of another model in between was undone, leaving no default."""
    import shutil

    from hanseek.sentiment.registry import ModelCard, default_name, delete_model, save_model, set_default

    class Tiny:
        def save(self, directory: Path) -> None:
            (directory / "weights.bin").write_bytes(b"w")

    root = tmp_path / "sentiment"
    for name in ("a", "b"):
        save_model(root, Tiny(), ModelCard(name=name, kind="baseline", domains=["movie"], train_size=1))  # type: ignore[arg-type]
    set_default(root, "b")
    real = shutil.rmtree

    def and_meanwhile(path: Any, *args: Any, **kwargs: Any) -> None:
        real(path, *args, **kwargs)
        set_default(root, "a")  # another request makes "a" the default while "b" is deleted

    monkeypatch.setattr(shutil, "rmtree", and_meanwhile)
    delete_model(root, "b")
    monkeypatch.setattr(shutil, "rmtree", real)
    assert default_name(root) == "a"


def _copy_demo(svc: SentimentService, name: str) -> Path:
    """A copy of the demo baseline under another directory name, its card.json left as it was."""
    import shutil

    svc.predict(["좋다"])  # trains the demo baseline into this data dir
    copy = svc.root / name
    shutil.copytree(svc.root / "demo-baseline", copy)
    return copy


@pytest.mark.parametrize(
    ("array", "cut", "fragment"),
    [
        ("coef", lambda a: a[:, :10], "coef has shape (1, 10)"),
        ("idf_char", lambda a: a[:-1], "idf_char has shape"),
        ("nb", lambda a: a[:5], "nb has shape (5,)"),
        ("intercept", lambda a: np.array([np.nan], dtype=a.dtype), "intercept holds values"),
    ],
)
def test_a_baseline_with_arrays_of_the_wrong_shape_is_a_load_error(
    svc: SentimentService, array: str, cut: object, fragment: str
) -> None:
    """Arrays that do not fit the vocabulary fail at load (503), not in the middle of a matmul (500)."""
    copy = _copy_demo(svc, "cut")
    with np.load(copy / "weights.npz", allow_pickle=False) as w:
        arrays = {k: w[k] for k in w.files}
    assert array in arrays
    arrays[array] = cut(arrays[array])  # type: ignore[operator]
    np.savez_compressed(copy / "weights.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(registry.ModelLoadError, match=r"cannot load sentiment model 'cut'") as info:
        svc.predict(["좋다"], "cut")
    assert fragment in str(info.value)


def test_a_model_is_named_by_its_directory(svc: SentimentService) -> None:
    """`cp -r demo-baseline old-copy`: listed and answering as `old-copy`, not as its card's name."""
    _copy_demo(svc, "old-copy")
    assert json.loads((svc.root / "old-copy" / "card.json").read_text())["name"] == "demo-baseline"
    assert sorted(c.name for c in svc.cards()) == ["demo-baseline", "old-copy"]
    card, preds = svc.predict(["정말 최고의 영화"], "old-copy")
    assert card.name == "old-copy" and len(preds) == 1
    assert svc.resolve("demo-baseline").card.name == "demo-baseline"
