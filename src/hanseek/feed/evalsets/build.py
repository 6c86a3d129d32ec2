"""Build (and cache) the evaluation sets: real posts + simulated readers, and the posts' vectors.

Sets live under `<data_dir>/feed/evalsets/<name>/`; post vectors under
`<data_dir>/feed/vectors/<encoder>/<name>.npz`, keyed by a hash of the encoded text, so a rebuilt set
or a re-run evaluation never encodes the same text twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from hanseek.feed.evalsets import reader, sources
from hanseek.feed.evalsets.model import SECONDS_PER_DAY, UNREADABLE, EvalSet, UnreadableSet
from hanseek.feed.text import post_text
from hanseek.files import atomic_file

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SetSpec:
    name: str
    description: str
    load: Callable[[Path], list[sources.SourcePost]]
    sample: int | None = None
    model: reader.ReaderModel = field(default_factory=reader.ReaderModel)
    text_fields: tuple[str, ...] = ("title", "category", "body")
    train_end: float = 0.55  # fraction of the event period: train the ranker before this
    val_end: float = 0.70  # validate the ranker before this; test (replay) after
    accrual_days: float = 3.0
    open_days: float = 30.0


SPECS: dict[str, SetSpec] = {
    s.name: s
    for s in (
        SetSpec(
            "petitions",
            "Petition titles posted 31 Jan – 31 Dec 2020 (in this period the file keeps only petitions "
            "with more than ~100 agrees): 17 boards, ~30 posts a day in all.",
            lambda d: sources.petitions_titles(
                d / "petitions_titles" / "petition_data.csv", expiry_from="2020-03-01", expiry_to="2021-01-31"
            ),
        ),
        SetSpec(
            "petitions-dense",
            "Petition titles posted 30 Jan – 31 Mar 2019, when the file keeps every petition "
            "(median 7 agrees): a uniform sample of 8,000, ~130 posts a day in all.",
            lambda d: sources.petitions_titles(
                d / "petitions_titles" / "petition_data.csv", expiry_from="2019-03-01", expiry_to="2019-04-30"
            ),
            sample=8000,
        ),
        SetSpec(
            "petitions-longform",
            "Full petitions (title + first 200 characters of the body) from Apr – Aug 2019 "
            "(the archive keeps those with > ~100 agrees).",
            lambda d: [
                p
                for p in sources.petitions_archive(d / "petitions_archive", body_chars=200)
                if p.created_at >= 1_546_300_800  # 2019-01-01: drop the lone 2017 week
            ],
        ),
    )
}


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class VectorCache:
    """Post vectors by text hash, one file per (encoder, set)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._vecs: dict[str, npt.NDArray[np.float32]] = {}
        if path.is_file():
            try:
                with np.load(path) as z:
                    for k, v in zip(z["keys"].tolist(), z["vecs"], strict=True):
                        self._vecs[k] = v
            except UNREADABLE as exc:
                # Only a cache: encoding again costs time, a traceback on every run costs the command.
                self._vecs.clear()
                log.warning("post vectors %s are unreadable (%s); encoding them again", path, exc)

    def get_many(
        self,
        texts: list[str],
        encode: Callable[[list[str]], npt.NDArray[np.float32]],
        chunk: int = 256,
        progress: Progress | None = None,
    ) -> npt.NDArray[np.float32]:
        keys = [text_key(t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self._vecs}.items())
        done = len(texts) - len(missing)
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]
            vecs = encode([t for _, t in part])
            for (k, _), v in zip(part, vecs, strict=True):
                self._vecs[k] = v
            self.save()  # a long encode can be interrupted and resumed
            if progress:
                progress(done + start + len(part), len(texts))
        return np.stack([self._vecs[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._vecs.keys()))
        vecs = np.stack(list(self._vecs.values())) if self._vecs else np.zeros((0, 0), np.float32)
        # A temporary of its own (not one fixed name): two builders of one set would write the same
        # temporary at once and rename a mix of both.
        with atomic_file(self.path, binary=True) as fh:
            np.savez(fh, keys=keys, vecs=vecs)


def build_set(spec: SetSpec, shared_data: Path) -> EvalSet:
    """Load the posts and simulate the readers (deterministic for a given spec)."""
    posts = spec.load(shared_data)
    if spec.sample is not None and len(posts) > spec.sample:
        rng = np.random.default_rng(spec.model.seed)
        keep = np.sort(rng.choice(len(posts), size=spec.sample, replace=False))
        posts = [posts[i] for i in keep]
    communities = sorted({p.community for p in posts})
    code = {c: i for i, c in enumerate(communities)}
    community = np.array([code[p.community] for p in posts], dtype=np.int32)
    created = np.array([p.created_at for p in posts], dtype=np.float64)
    pop = np.array([p.popularity for p in posts], dtype=np.float64)
    texts = [
        post_text({"title": p.title, "category": p.category, "body": p.body}, spec.text_fields) for p in posts
    ]
    lexical = reader.lexical_vectors(texts, spec.model.lexical_dims, spec.model.seed)
    log = reader.simulate(
        community=community,
        created_at=created,
        popularity_final=pop,
        lexical=lexical,
        n_communities=len(communities),
        accrual_days=spec.accrual_days,
        open_days=spec.open_days,
        model=spec.model,
    )
    t0, t1 = float(log.ev_at.min()), float(log.ev_at.max())
    reads = log.ev_kind == 0
    age_days = (log.ev_at[reads] - created[log.ev_post[reads]]) / SECONDS_PER_DAY
    meta = {
        "description": spec.description,
        "reader_model": spec.model.describe(),
        "stats": {
            "posts": len(posts),
            "boards": len(communities),
            "users": spec.model.n_users,
            "events": len(log.ev_user),
            "reads": int(reads.sum()),
            "likes": int((log.ev_kind == 1).sum()),
            "comments": int((log.ev_kind == 2).sum()),
            "sessions": len(np.unique(log.ev_session)),
            "read_age_days_p10_p50_p90": [round(float(x), 2) for x in np.percentile(age_days, [10, 50, 90])],
            "first_post": float(created.min()),
            "last_post": float(created.max()),
        },
    }
    return EvalSet(
        name=spec.name,
        post_ids=[p.id for p in posts],
        titles=[p.title for p in posts],
        texts=texts,
        communities=communities,
        post_community=community,
        created_at=created,
        popularity_final=pop,
        user_communities=log.user_communities,
        ev_user=log.ev_user,
        ev_post=log.ev_post,
        ev_kind=log.ev_kind,
        ev_at=log.ev_at,
        ev_session=log.ev_session,
        t_train_end=t0 + spec.train_end * (t1 - t0),
        t_val_end=t0 + spec.val_end * (t1 - t0),
        accrual_days=spec.accrual_days,
        open_days=spec.open_days,
        meta=meta,
        reader_params=log.params,
    )


def set_folder(data_dir: Path, name: str) -> Path:
    return data_dir / "feed" / "evalsets" / name


def load_or_build(spec: SetSpec, shared_data: Path, data_dir: Path, *, rebuild: bool = False) -> EvalSet:
    """The cached set, else one built now and cached. A cache that cannot be read (cut short by a
    killed save of an older version, or damaged) is built again, with a one-line warning: the set is
    deterministic, so nothing but time is lost, and `train-ranker` has no --rebuild to get out."""
    folder = set_folder(data_dir, spec.name)
    if not rebuild and folder.is_dir():
        try:
            cached = EvalSet.load(folder)
        except UnreadableSet as exc:
            log.warning(
                "evaluation set %s: the cached copy is unreadable (%s); rebuilding it", spec.name, exc
            )
        else:
            if cached.reader_params is not None:
                return cached
            # A set cached before the reader's parameters were recorded: simulate again (same seed,
            # same draws) and keep the parameters only if the log comes out identical.
            es = build_set(spec, shared_data)
            if not same_log(cached, es):
                raise RuntimeError(
                    f"rebuilding {spec.name} to record the reader parameters gave a different log; "
                    "pass --rebuild to replace the cached set"
                )
            cached.reader_params = es.reader_params
            cached.save(folder)
            return cached
    es = build_set(spec, shared_data)
    es.save(folder)
    return es


def same_log(a: EvalSet, b: EvalSet) -> bool:
    """The posts, users and events of two sets are identical (bit for bit)."""
    arrays = ("post_community", "created_at", "popularity_final", "ev_user", "ev_post", "ev_kind", "ev_at")
    return (
        a.post_ids == b.post_ids
        and a.texts == b.texts
        and a.communities == b.communities
        and all(np.array_equal(getattr(a, n), getattr(b, n)) for n in arrays)
        and np.array_equal(a.ev_session, b.ev_session)
        and len(a.user_communities) == len(b.user_communities)
        and all(np.array_equal(x, y) for x, y in zip(a.user_communities, b.user_communities, strict=True))
        and a.t_train_end == b.t_train_end
        and a.t_val_end == b.t_val_end
    )


def set_vectors(
    es: EvalSet,
    encoder_name: str,
    encode: Callable[[list[str]], npt.NDArray[np.float32]],
    data_dir: Path,
    progress: Progress | None = None,
) -> npt.NDArray[np.float32]:
    cache = VectorCache(data_dir / "feed" / "vectors" / encoder_name / f"{es.name}.npz")
    return cache.get_many(es.texts, encode, progress=progress)
