"""`hanseek feed eval`: build the sets, encode their posts (cached), replay, and write the report."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.progress import Progress

from hanseek.config import Settings
from hanseek.feed import evaluate as ev
from hanseek.feed.evalsets import build
from hanseek.feed.evalsets.model import EvalSet
from hanseek.feed.settings import FeedSettings


@dataclass
class Report:
    data: dict[str, Any]
    markdown: str


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


class EvalRunner:
    def __init__(
        self, settings: Settings, shared_data: Path, feed_settings: FeedSettings | None = None
    ) -> None:
        self.settings = settings
        self.shared_data = shared_data
        self.feed_settings = feed_settings or FeedSettings()
        self._encoder: Any = None

    @staticmethod
    def set_names() -> list[str]:
        return list(build.SPECS)

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if self._encoder is None:
            from hanseek.encoders.registry import load_text_encoder

            self._encoder = load_text_encoder(self.settings)
        out: npt.NDArray[np.float32] = self._encoder.encode(texts, kind="passage")
        return out

    def load(
        self, name: str, *, rebuild: bool = False, bar: Progress | None = None
    ) -> tuple[EvalSet, npt.NDArray[np.float32]]:
        es = build.load_or_build(build.SPECS[name], self.shared_data, self.settings.data_dir, rebuild=rebuild)
        task = bar.add_task(f"{name}: post vectors", total=es.n_posts, info="") if bar else None

        def progress(done: int, total: int) -> None:
            if bar is not None and task is not None:
                bar.update(task, completed=done, info="encoding")

        encoder_name = self.settings.text_model
        vecs = build.set_vectors(es, encoder_name, self._encode, self.settings.data_dir, progress=progress)
        if bar is not None and task is not None:
            bar.update(task, completed=es.n_posts, info="cached")
        return es, vecs

    def methods(self) -> list[ev.Method]:
        fs = self.feed_settings
        return [ev.Personalized(fs.cold_start_popular_share), ev.Latest(), ev.Popular()]

    def run(
        self,
        names: list[str],
        *,
        k: int = 20,
        max_queries: int = 3000,
        rebuild: bool = False,
        bar: Progress | None = None,
    ) -> Report:
        sets: dict[str, Any] = {}
        md: list[str] = []
        for name in names:
            es, vecs = self.load(name, rebuild=rebuild, bar=bar)
            task = bar.add_task(f"{name}: replay", total=None, info="") if bar else None
            result = ev.evaluate(
                es, vecs, self.methods(), settings=self.feed_settings, k=k, max_queries=max_queries
            )
            if bar is not None and task is not None:
                bar.update(task, total=1, completed=1, info=f"{result.queries} queries")
            sets[name] = describe(es) | {
                "queries": result.queries,
                "seconds": result.seconds,
                "windows": result.windows,
            }
            md.append(section(es, result))
        data = {
            "command": "hanseek feed eval " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["feed"] else None,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "encoder": self.settings.text_model,
            "k": k,
            "max_queries": max_queries,
            "feed_settings": {
                "weights": {
                    "read": self.feed_settings.weight_read,
                    "like": self.feed_settings.weight_like,
                    "comment": self.feed_settings.weight_comment,
                },
                "decay_half_life_days": self.feed_settings.decay_half_life_days,
            },
            "sets": sets,
        }
        header = (
            f"# Feed replay evaluation\n\nGenerated {data['generated_at']} with `{data['command']}` "
            f"(encoder {data['encoder']}, K={k}, up to {max_queries} held-out sessions per set).\n"
        )
        return Report(data, header + "\n" + "\n\n".join(md) + "\n")


def describe(es: EvalSet) -> dict[str, Any]:
    st = es.meta.get("stats", {})
    return {
        "description": es.meta.get("description", ""),
        "stats": st,
        "reader_model": es.meta.get("reader_model", {}),
        "period": [_day(float(es.created_at.min())), _day(float(es.created_at.max()))],
        "train_until": _day(es.t_train_end),
        "validate_until": _day(es.t_val_end),
    }


def section(es: EvalSet, result: ev.EvalResult) -> str:
    st = es.meta.get("stats", {})
    lines = [
        f"## {es.name}",
        "",
        es.meta.get("description", ""),
        "",
        f"{st.get('posts')} posts in {st.get('boards')} boards, {st.get('users')} simulated users, "
        f"{st.get('events')} events ({st.get('reads')} reads, {st.get('likes')} likes, "
        f"{st.get('comments')} comments) in {st.get('sessions')} sessions; read posts were "
        f"{st.get('read_age_days_p10_p50_p90')} days old (p10/p50/p90). Test sessions start after "
        f"{_day(es.t_val_end)}; {result.queries} were replayed ({result.seconds}s).",
        "",
        ev.markdown_table(result),
    ]
    return "\n".join(lines)
