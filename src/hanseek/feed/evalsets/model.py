"""An evaluation set: a catalogue of real posts and a (simulated) log of who read what, when."""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

KINDS = ("read", "like", "comment")
# What reading a cache that a killed writer (or an older, in-place save) cut short can raise: an empty
# set.json is a JSONDecodeError, an empty .npz an EOFError (which click would turn into a bare
# "Aborted."), a truncated one a BadZipFile or a zlib error, a missing file an OSError.
UNREADABLE = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    zipfile.BadZipFile,
    zlib.error,
)


class UnreadableSet(Exception):
    """A cached evaluation set whose files are missing, cut short or corrupt."""


SECONDS_PER_DAY = 86_400.0


def accrued_popularity(
    final: npt.NDArray[np.float64], age_s: npt.NDArray[np.float64], accrual_days: float, open_days: float
) -> npt.NDArray[np.float64]:
    """The agree count visible `age_s` seconds after posting: petitions gather agrees fast at first
    and stop when they close, so the curve is 1 - exp(-age/τ), scaled to reach `final` at closing.
    Using the final count at an earlier time would leak the future into the popular baseline."""
    age = np.clip(age_s / SECONDS_PER_DAY, 0.0, open_days)
    frac = (1.0 - np.exp(-age / accrual_days)) / (1.0 - math.exp(-open_days / accrual_days))
    out: npt.NDArray[np.float64] = final * frac
    return out


@dataclass
class ReaderParams:
    """The per-user coefficients `simulate` drew, recorded (not used by any ranking method) so the
    evaluation can report the reader model's own utility as an upper-bound reference. NaN / zero
    rows for a user who had no posts to read."""

    tau_days: npt.NDArray[np.float64]  # [users]
    b_pop: npt.NDArray[np.float64]
    b_int: npt.NDArray[np.float64]
    b_st: npt.NDArray[np.float64]
    log_share: npt.NDArray[np.float64]  # [users, communities], -inf outside the user's boards
    interest: npt.NDArray[np.float32]  # [users, lexical dims]
    lexical: npt.NDArray[np.float32]  # [posts, lexical dims]
    max_age_days: float

    def base_utility(
        self,
        user: int,
        posts: npt.NDArray[np.int64],
        age_s: npt.NDArray[np.float64],
        visible_popularity: npt.NDArray[np.float64],
        community: npt.NDArray[np.int32],
        *,
        interest: bool = True,
    ) -> npt.NDArray[np.float64]:
        """The session-independent part of the reader's utility (no short-term term), -inf for
        posts older than the reader ever looks at. `interest=False` leaves out the long-term interest
        term, the one that lives in the lexical space no ranking method sees."""
        u: npt.NDArray[np.float64] = (
            -age_s / (self.tau_days[user] * SECONDS_PER_DAY)
            + self.b_pop[user] * np.log1p(visible_popularity)
            + self.log_share[user, community]
        )
        if interest:
            u = u + self.b_int[user] * (self.lexical[posts] @ self.interest[user]).astype(np.float64)
        return np.where(age_s <= self.max_age_days * SECONDS_PER_DAY, u, -np.inf)

    def within_session(
        self, user: int, posts: npt.NDArray[np.int64], last_read: int
    ) -> npt.NDArray[np.float64]:
        """The short-term term the reader adds within a session: b_st · cos(last read, post)."""
        out: npt.NDArray[np.float64] = self.b_st[user] * (
            self.lexical[posts] @ self.lexical[last_read]
        ).astype(np.float64)
        return out

    def save(self, path: Path | IO[bytes]) -> None:
        np.savez_compressed(
            path,
            tau_days=self.tau_days,
            b_pop=self.b_pop,
            b_int=self.b_int,
            b_st=self.b_st,
            log_share=self.log_share,
            interest=self.interest,
            lexical=self.lexical,
            max_age_days=np.float64(self.max_age_days),
        )

    @staticmethod
    def load(path: Path | IO[bytes]) -> ReaderParams:
        with np.load(path) as z:
            return ReaderParams(
                z["tau_days"],
                z["b_pop"],
                z["b_int"],
                z["b_st"],
                z["log_share"],
                z["interest"],
                z["lexical"],
                float(z["max_age_days"]),
            )


@dataclass
class EvalSet:
    name: str
    post_ids: list[str]
    titles: list[str]
    texts: list[str]  # the text the encoder sees
    communities: list[str]  # code -> name
    post_community: npt.NDArray[np.int32]
    created_at: npt.NDArray[np.float64]
    popularity_final: npt.NDArray[np.float64]
    user_communities: list[npt.NDArray[np.int32]]
    ev_user: npt.NDArray[np.int32]
    ev_post: npt.NDArray[np.int32]
    ev_kind: npt.NDArray[np.int8]
    ev_at: npt.NDArray[np.float64]
    ev_session: npt.NDArray[np.int32]
    t_train_end: float
    t_val_end: float
    accrual_days: float = 3.0
    open_days: float = 30.0
    meta: dict[str, Any] = field(default_factory=dict)
    # The simulated readers' own parameters: for the oracle reference row only, never for a method.
    reader_params: ReaderParams | None = None

    @property
    def n_posts(self) -> int:
        return len(self.post_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_communities)

    def popularity_at(self, t: float, idx: npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.float64]:
        sel = slice(None) if idx is None else idx
        return accrued_popularity(
            self.popularity_final[sel], t - self.created_at[sel], self.accrual_days, self.open_days
        )

    # --- persistence -------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write the set as `folder`, whole or not at all: the files go into a temporary sibling
        directory that is swapped in (an existing set is replaced; a reader sees the old set or the
        new one). Builders of one set take turns for the swap; the last one's set stays."""
        from hanseek.encoders.model_store import atomic_model_dir

        atomic_model_dir(folder, self._write, replace=True, lock=folder.parent / f".{folder.name}.lock")

    def _write(self, folder: Path) -> None:
        offsets = np.cumsum([0] + [len(c) for c in self.user_communities]).astype(np.int64)
        flat = np.concatenate(self.user_communities) if self.user_communities else np.zeros(0, np.int32)
        np.savez_compressed(
            folder / "arrays.npz",
            post_community=self.post_community,
            created_at=self.created_at,
            popularity_final=self.popularity_final,
            uc_offsets=offsets,
            uc_flat=flat.astype(np.int32),
            ev_user=self.ev_user,
            ev_post=self.ev_post,
            ev_kind=self.ev_kind,
            ev_at=self.ev_at,
            ev_session=self.ev_session,
        )
        if self.reader_params is not None:
            self.reader_params.save(folder / "reader.npz")
        doc = {
            "name": self.name,
            "post_ids": self.post_ids,
            "titles": self.titles,
            "texts": self.texts,
            "communities": self.communities,
            "t_train_end": self.t_train_end,
            "t_val_end": self.t_val_end,
            "accrual_days": self.accrual_days,
            "open_days": self.open_days,
            "meta": self.meta,
            # Tells "saved without reader parameters" (an older set) from "reader.npz went missing".
            "reader_params": self.reader_params is not None,
        }
        (folder / "set.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")

    @staticmethod
    def load(folder: Path, *, retry: bool = True) -> EvalSet:
        """Read a saved set; `UnreadableSet` when its files are missing, cut short or corrupt."""
        inode = _inode(folder)
        try:
            return EvalSet._load(folder)
        except UNREADABLE as exc:
            # A save swapped a new set in while this one was read, and the old folder was removed
            # under the open descriptor: the new set is whole, read it (not "unreadable").
            if retry and inode is not None and _inode(folder) not in (None, inode):
                return EvalSet.load(folder, retry=False)
            why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise UnreadableSet(f"{folder}: {why}") from exc

    @staticmethod
    def _load(folder: Path) -> EvalSet:
        # Every file is opened through one descriptor of the directory: a set swapped in meanwhile
        # cannot mix this set's files with the next one's.
        with _open_dir(folder) as dir_fd:

            def open_file(name: str) -> IO[bytes]:
                return os.fdopen(os.open(name, os.O_RDONLY, dir_fd=dir_fd), "rb")

            with open_file("set.json") as fh:
                doc = json.loads(fh.read().decode("utf-8"))
            with open_file("arrays.npz") as fh, np.load(fh) as z:
                a = {k: z[k] for k in z.files}
            reader_params: ReaderParams | None = None
            # Sets saved before the flag existed: reader.npz may or may not be there.
            if doc.get("reader_params", None) is not False:
                try:
                    fh = open_file("reader.npz")
                except FileNotFoundError:
                    if doc.get("reader_params"):
                        raise
                else:
                    with fh:
                        reader_params = ReaderParams.load(fh)
        off = a["uc_offsets"]
        flat = a["uc_flat"]
        return EvalSet(
            name=doc["name"],
            post_ids=doc["post_ids"],
            titles=doc["titles"],
            texts=doc["texts"],
            communities=doc["communities"],
            post_community=a["post_community"],
            created_at=a["created_at"],
            popularity_final=a["popularity_final"],
            user_communities=[flat[off[i] : off[i + 1]] for i in range(len(off) - 1)],
            ev_user=a["ev_user"],
            ev_post=a["ev_post"],
            ev_kind=a["ev_kind"],
            ev_at=a["ev_at"],
            ev_session=a["ev_session"],
            t_train_end=float(doc["t_train_end"]),
            t_val_end=float(doc["t_val_end"]),
            accrual_days=float(doc["accrual_days"]),
            open_days=float(doc["open_days"]),
            meta=doc["meta"],
            reader_params=reader_params,
        )


def _inode(folder: Path) -> int | None:
    try:
        return os.stat(folder).st_ino
    except OSError:
        return None


@contextmanager
def _open_dir(folder: Path) -> Iterator[int]:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)
