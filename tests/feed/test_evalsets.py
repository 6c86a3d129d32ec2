"""Evaluation sets: the reader model's recorded parameters and the oracle reference built on them,
and a cached set that a kill cut short."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hanseek.feed.evalsets import build
from hanseek.feed.evalsets.model import SECONDS_PER_DAY, EvalSet, ReaderParams, accrued_popularity
from hanseek.feed.evalsets.reader import ReaderModel, simulate
from hanseek.feed.evalsets.sources import SourcePost


def _catalogue(n: int = 300, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    lex = rng.standard_normal((n, 16)).astype(np.float32)
    lex /= np.linalg.norm(lex, axis=1, keepdims=True)
    return {
        "community": rng.integers(0, 4, n).astype(np.int32),
        "created_at": np.sort(rng.uniform(0, 90 * SECONDS_PER_DAY, n)),
        "popularity_final": rng.integers(0, 500, n).astype(np.float64),
        "lexical": lex,
        "n_communities": 4,
        "accrual_days": 3.0,
        "open_days": 30.0,
    }


def test_recorded_parameters_and_base_utility(tmp_path: Path) -> None:
    cat = _catalogue()
    model = ReaderModel(n_users=12, seed=7)
    log = simulate(model=model, **cat)  # type: ignore[arg-type]
    again = simulate(model=model, **cat)  # type: ignore[arg-type]
    assert np.array_equal(log.ev_post, again.ev_post) and np.array_equal(log.ev_at, again.ev_at)
    p = log.params
    assert p is not None
    assert np.isfinite(p.tau_days).all() and (p.tau_days > 0).all()
    assert ((p.b_pop >= 0.1) & (p.b_pop <= 0.5)).all() and ((p.b_int >= 4) & (p.b_int <= 12)).all()
    for u, comms in enumerate(log.user_communities):
        # Board shares: a distribution over the user's boards, -inf elsewhere.
        assert np.isclose(np.exp(p.log_share[u, comms]).sum(), 1.0)
        assert np.isneginf(np.delete(p.log_share[u], comms)).all()
    # Every read was of a post the reader's utility allowed (one of its boards, ≤ max_age old).
    community = cat["community"]
    created = cat["created_at"]
    assert isinstance(community, np.ndarray) and isinstance(created, np.ndarray)
    for u, post, at in zip(log.ev_user, log.ev_post, log.ev_at, strict=True):
        assert np.isfinite(p.log_share[u, community[post]])
        assert at - created[post] <= model.max_age_days * SECONDS_PER_DAY + 3600
    # base_utility against the formula written out.
    u = int(log.ev_user[0])
    posts = np.arange(20, dtype=np.int64)
    t = float(created[19]) + 2 * SECONDS_PER_DAY
    age = t - created[posts]
    pop_final = cat["popularity_final"]
    assert isinstance(pop_final, np.ndarray)
    vis = accrued_popularity(pop_final[posts], age, 3.0, 30.0)
    got = p.base_utility(u, posts, age, vis, community[posts])
    lex = cat["lexical"]
    assert isinstance(lex, np.ndarray)
    want = (
        -age / (p.tau_days[u] * SECONDS_PER_DAY)
        + p.b_pop[u] * np.log1p(vis)
        + p.b_int[u] * (lex[posts] @ p.interest[u])
        + p.log_share[u, community[posts]]
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)
    p.save(tmp_path / "reader.npz")
    back = ReaderParams.load(tmp_path / "reader.npz")
    np.testing.assert_array_equal(back.tau_days, p.tau_days)
    np.testing.assert_array_equal(back.interest, p.interest)
    assert back.max_age_days == p.max_age_days


def _tiny_spec(name: str = "tiny") -> build.SetSpec:
    rng = np.random.default_rng(3)
    posts = [
        SourcePost(
            id=f"p{i}",
            community=f"c{i % 3}",
            category=f"c{i % 3}",
            title=f"청원 {i} " + " ".join(f"w{int(w)}" for w in rng.integers(0, 40, 5)),
            body="",
            created_at=1_600_000_000 + i * 3600.0,
            popularity=int(rng.integers(0, 500)),
        )
        for i in range(240)
    ]
    return build.SetSpec(name, "a test set", lambda _d: posts, model=ReaderModel(n_users=15, lexical_dims=16))


def _cut(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes(b"" if how == "empty" else data[: len(data) // 2])


@pytest.mark.parametrize("how", ["empty", "truncated"])
@pytest.mark.parametrize("file", ["set.json", "arrays.npz", "reader.npz"])
def test_a_half_written_cache_is_rebuilt(
    tmp_path: Path, file: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A kill during the old in-place save left one of the files empty or cut short: the next
    `train-ranker --set` / `eval --set` rebuilt the set with a one-line note instead of failing with a
    traceback (JSONDecodeError, BadZipFile) or a bare "Aborted." (EOFError) on every later run."""
    spec = _tiny_spec()
    first = build.load_or_build(spec, tmp_path, tmp_path)
    folder = tmp_path / "feed" / "evalsets" / spec.name
    _cut(folder / file, how)
    with caplog.at_level(logging.WARNING, logger=build.__name__):
        again = build.load_or_build(spec, tmp_path, tmp_path)
    assert build.same_log(first, again) and again.reader_params is not None
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "unreadable" in notes[0] and "rebuilding" in notes[0], notes
    back = EvalSet.load(folder)  # and the cache is whole again
    assert build.same_log(first, back) and back.reader_params is not None
    np.testing.assert_array_equal(back.reader_params.tau_days, first.reader_params.tau_days)  # type: ignore[union-attr]


def test_a_save_that_dies_midway_leaves_the_previous_set_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old save wrote arrays.npz, set.json, reader.npz in place, and set.json's presence meant
    "complete": a failure after set.json left a set without (or with half) its reader parameters."""
    spec = _tiny_spec()
    es = build.build_set(spec, tmp_path)
    folder = tmp_path / "feed" / "evalsets" / spec.name
    real_save = ReaderParams.save

    def dies(self: ReaderParams, path: Any) -> None:
        real_save(self, path)
        raise KeyboardInterrupt  # as a Ctrl-C (or a kill) after the other files were written

    monkeypatch.setattr(ReaderParams, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        es.save(folder)
    assert not folder.exists() and not list(folder.parent.iterdir())  # nothing, not a half set
    monkeypatch.setattr(ReaderParams, "save", real_save)
    es.save(folder)
    changed = build.build_set(spec, tmp_path)
    changed.t_val_end += 1.0
    monkeypatch.setattr(ReaderParams, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        changed.save(folder)  # replacing an existing set
    back = EvalSet.load(folder)
    assert build.same_log(es, back) and back.reader_params is not None  # the previous set, whole
    assert sorted(p.name for p in folder.parent.iterdir() if not p.name.endswith(".lock")) == [spec.name]
    monkeypatch.setattr(ReaderParams, "save", real_save)
    changed.save(folder)
    assert EvalSet.load(folder).t_val_end == changed.t_val_end  # a complete save replaces it


def test_a_set_cached_without_reader_parameters_is_completed(tmp_path: Path) -> None:
    spec = _tiny_spec()
    es = build.build_set(spec, tmp_path)
    params, es.reader_params = es.reader_params, None
    folder = tmp_path / "feed" / "evalsets" / spec.name
    es.save(folder)
    assert EvalSet.load(folder).reader_params is None
    got = build.load_or_build(spec, tmp_path, tmp_path)
    assert got.reader_params is not None and params is not None
    np.testing.assert_array_equal(EvalSet.load(folder).reader_params.b_pop, params.b_pop)  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_an_unreadable_vector_cache_is_encoded_again(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    texts = [f"글 {i}" for i in range(40)]
    calls: list[int] = []

    def encode(batch: list[str]) -> np.ndarray:
        calls.append(len(batch))
        return np.stack([np.full(4, float(len(t) + i), np.float32) for i, t in enumerate(batch)])

    path = tmp_path / "vectors" / "tiny.npz"
    first = build.VectorCache(path).get_many(texts, encode, chunk=16)
    assert build.VectorCache(path).get_many(texts, encode).shape == (40, 4) and sum(calls) == 40
    _cut(path, how)
    with caplog.at_level(logging.WARNING, logger=build.__name__):
        again = build.VectorCache(path).get_many(texts, encode, chunk=16)
    assert sum(calls) == 80 and np.array_equal(first, again)
    assert len(caplog.records) == 1 and "encoding them again" in caplog.records[0].getMessage()
    assert [p.name for p in path.parent.iterdir()] == ["tiny.npz"]  # no temporaries left


def test_concurrent_builders_of_one_set_leave_one_whole_set(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    spec = _tiny_spec()
    folder = tmp_path / "feed" / "evalsets" / spec.name
    variants = []
    for i in range(4):
        es = build.build_set(spec, tmp_path)
        es.t_val_end += i
        variants.append(es)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda es: es.save(folder), variants * 2))
    back = EvalSet.load(folder)
    assert back.t_val_end in {es.t_val_end for es in variants}
    assert back.reader_params is not None and build.same_log(
        back, next(es for es in variants if es.t_val_end == back.t_val_end)
    )
    assert sorted(p.name for p in folder.parent.iterdir()) == [f".{spec.name}.lock", spec.name]


def test_a_set_swapped_in_while_it_is_read_is_read_not_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader holding the old folder's descriptor found arrays.npz gone once a concurrent save had
    swapped a new set in and removed the old one: "unreadable", and the whole set was simulated
    again. The reader now sees the swap and reads the new set."""
    spec = _tiny_spec()
    es = build.build_set(spec, tmp_path)
    folder = tmp_path / "feed" / "evalsets" / spec.name
    es.save(folder)
    real_load = EvalSet._load
    calls: list[int] = []

    def swapped_meanwhile(path: Path) -> EvalSet:
        calls.append(1)
        if len(calls) == 1:
            es.save(folder)  # a concurrent builder's save lands between this reader's files
            raise FileNotFoundError("arrays.npz")
        return real_load(path)

    monkeypatch.setattr(EvalSet, "_load", staticmethod(swapped_meanwhile))
    back = EvalSet.load(folder)
    assert len(calls) == 2 and build.same_log(es, back)
