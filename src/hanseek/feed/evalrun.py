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
from hanseek.feed.metrics import ratio_interval
from hanseek.feed.replay import QueryUnit
from hanseek.feed.settings import FeedSettings


@dataclass
class Report:
    data: dict[str, Any]
    markdown: str


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


class EvalRunner:
    def __init__(
        self,
        settings: Settings,
        shared_data: Path,
        feed_settings: FeedSettings | None = None,
        *,
        train_queries: int = 5000,
        val_queries: int = 1500,
        unit: QueryUnit = "read",
        oracle_parts: bool = False,
    ) -> None:
        self.settings = settings
        self.oracle_parts = oracle_parts
        self.shared_data = shared_data
        self.feed_settings = feed_settings or FeedSettings()
        self.train_queries = train_queries
        self.val_queries = val_queries
        self.unit = unit
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

    def ranker_methods(
        self, es: EvalSet, vecs: npt.NDArray[np.float32], *, ablation: bool, bar: Progress | None
    ) -> tuple[list[ev.Method], dict[str, Any]]:
        """The blend, the trained ranker (time split on this set), its diversity-capped variant and
        (with `ablation`) one ranker per left-out feature group. Returns methods and training notes."""
        from hanseek.feed.ranker import offline
        from hanseek.feed.ranker.candidates import CandidateConfig
        from hanseek.feed.ranker.features import GROUPS
        from hanseek.feed.ranker.model import blend_model
        from hanseek.feed.ranker.train import collect, train

        cfg = CandidateConfig()
        cache = offline.BuildCache(cfg)
        task = bar.add_task(f"{es.name}: train ranker", total=None, info="") if bar else None
        t0 = float(es.ev_at.min())
        fs = self.feed_settings
        examples = (
            collect(
                es,
                vecs,
                fs,
                cfg,
                start=t0,
                end=es.t_train_end,
                max_queries=self.train_queries,
                neg_per_query=40,
                seed=0,
                unit=self.unit,
            ),
            collect(
                es,
                vecs,
                fs,
                cfg,
                start=es.t_train_end,
                end=es.t_val_end,
                max_queries=self.val_queries,
                neg_per_query=None,
                seed=1,
                unit=self.unit,
            ),
        )
        trained = train(es, vecs, fs, cfg, examples=examples)
        methods: list[ev.Method] = [
            offline.CachedRankerMethod(blend_model(), cache, "blend (no model)"),
            offline.CachedRankerMethod(trained.model, cache, "ranker"),
            offline.CachedRankerMethod(
                trained.model, cache, "ranker + community cap", diversity_share=fs.diversity_share
            ),
        ]
        notes: dict[str, Any] = {
            "chosen": trained.model.kind,
            "validation": trained.candidates,
            "train_rows": trained.train_rows,
            "train_queries_with_a_read_in_the_union": examples[0].with_positive,
            "train_queries": examples[0].queries,
            "val_queries": examples[1].queries,
        }
        if ablation:
            for group in GROUPS:
                if group == "context":
                    continue
                m = train(
                    es,
                    vecs,
                    fs,
                    cfg,
                    kinds=(trained.model.kind,),
                    drop_group=group,
                    examples=examples,
                    hgb_params=trained.model.meta.get("params"),  # the full model's setting
                )
                methods.append(offline.CachedRankerMethod(m.model, cache, f"ranker − {group}"))
        if bar is not None and task is not None:
            bar.update(task, total=1, completed=1, info=f"{trained.model.kind}, {trained.train_rows} rows")
        return methods, notes

    def run(
        self,
        names: list[str],
        *,
        k: int = 20,
        max_queries: int | None = 3000,
        rebuild: bool = False,
        ranker: bool = True,
        ablation: bool = False,
        bar: Progress | None = None,
    ) -> Report:
        from hanseek.feed.blas import single_threaded_blas

        single_threaded_blas()
        sets: dict[str, Any] = {}
        md: list[str] = []
        for name in names:
            es, vecs = self.load(name, rebuild=rebuild, bar=bar)
            methods = self.methods()
            notes: dict[str, Any] = {}
            if ranker:
                extra, notes = self.ranker_methods(es, vecs, ablation=ablation, bar=bar)
                methods += extra
            if es.reader_params is not None:
                methods.append(ev.ReaderOracle())  # reference row: the simulation's own utility
                if self.oracle_parts:
                    methods += [
                        ev.ReaderOracle(session=False),
                        ev.ReaderOracle(interest=False),
                        ev.ReaderOracle(interest=False, session=False),
                    ]
            task = bar.add_task(f"{name}: replay", total=None, info="") if bar else None
            result = ev.evaluate(
                es, vecs, methods, settings=self.feed_settings, k=k, max_queries=max_queries, unit=self.unit
            )
            if bar is not None and task is not None:
                bar.update(task, total=1, completed=1, info=f"{result.queries} queries")
            sets[name] = describe(es) | {
                "queries": result.queries,
                "seconds": result.seconds,
                "ranker_training": notes,
                "windows": result.windows,
                "target": target_check(result) if ranker else None,
            }
            md.append(section(es, result, notes if ranker else None))
        data = {
            # argv is [hanseek, feed, eval, options…] when run from the CLI
            "command": "hanseek feed eval " + shlex.join(sys.argv[3:])
            if sys.argv[1:3] == ["feed", "eval"]
            else None,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "encoder": self.settings.text_model,
            "k": k,
            "query_unit": self.unit,
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
        sessions = (
            "every held-out session" if max_queries is None else f"up to {max_queries} held-out sessions"
        )
        unit_text = (
            f"a query before each read of {sessions} per set, the read post relevant"
            if self.unit == "read"
            else f"a query at the start of each of {sessions} per set, its reads relevant"
        )
        header = (
            f"# Feed replay evaluation\n\nGenerated {data['generated_at']} with `{data['command']}` "
            f"(encoder {data['encoder']}, K={k}; {unit_text}).\n"
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


def target_check(
    result: ev.EvalResult, factor: float = 1.1
) -> dict[str, dict[str, float | bool | list[float]]]:
    """Issue 9's target per window: ranker HR@K and nDCG@K ≥ 1.1× the better of latest and popular,
    with a 95 % bootstrap interval of that ratio over the held-out sessions, and the oracle's ratio
    beside it (what the simulated readers' own utility reaches)."""
    k = result.k
    out: dict[str, dict[str, float | bool | list[float]]] = {}
    for wname, per in result.windows.items():
        if "ranker" not in per:
            continue
        row: dict[str, float | bool | list[float]] = {}
        pq = result.per_query.get(wname, {})
        for metric, series in ((f"hr@{k}", "hr"), (f"ndcg@{k}", "ndcg")):
            base = max(per["latest"][metric], per["popular"][metric])
            ratio = per["ranker"][metric] / base if base > 0 else float("inf")
            row[f"{metric}_ratio"] = round(ratio, 3)
            row[f"{metric}_met"] = ratio >= factor
            if result.groups and base > 0 and {"ranker", "latest", "popular"} <= pq.keys():
                lo, hi = ratio_interval(
                    pq["ranker"][series], [pq["latest"][series], pq["popular"][series]], result.groups
                )
                row[f"{metric}_ratio_ci95"] = [round(lo, 3), round(hi, 3)]
            for name, key in ((ORACLE, "oracle"), (VISIBLE_ORACLE, "visible_oracle")):
                if name in per:
                    row[f"{metric}_{key}_ratio"] = (
                        round(per[name][metric] / base, 3) if base > 0 else float("inf")
                    )
        out[wname] = row
    return out


ORACLE = ev.ReaderOracle.name
# The oracle without the terms in the readers' hidden lexical space (interest, within-session).
VISIBLE_ORACLE = ev.ReaderOracle(interest=False, session=False).name


def section(es: EvalSet, result: ev.EvalResult, notes: dict[str, Any] | None = None) -> str:
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
        f"{_day(es.t_val_end)}; {result.queries} "
        f"{'reads of held-out sessions' if result.unit == 'read' else 'held-out sessions'} were replayed as "
        f"queries ({result.seconds}s).",
        "",
        ev.markdown_table(result),
    ]
    if notes:
        k = result.k
        checks = target_check(result)
        visible = any(f"hr@{k}_visible_oracle_ratio" in row for row in checks.values())
        lines += [
            "",
            f"The **{ORACLE}** row is an upper-bound reference, not a method: it ranks by the simulated "
            "reader's own utility for that user at that moment (their true recency scale, popularity "
            "and interest coefficients, board shares, the popularity they saw, and the within-session term "
            "when the query follows an earlier read of the same session), which only the simulation "
            "knows. No method can use it; it shows how much of the target the "
            "simulation leaves reachable.",
        ]
        if visible:
            lines += [
                "",
                "The **oracle − …** rows leave terms out of that utility. Interest and the "
                "within-session term live in the readers' lexical space, which no method sees; "
                f"**{VISIBLE_ORACLE}** keeps only recency, popularity and board shares, which are "
                "built from what the service observes, but with each reader's true coefficients.",
            ]
        lines += [
            "",
            f"Ranker: {notes['chosen']} chosen on validation nDCG@20 "
            f"({', '.join(f'{kind}: {v}' for kind, v in notes['validation'].items())}); "
            f"{notes['train_rows']} training rows from {notes['train_queries_with_a_read_in_the_union']} of "
            f"{notes['train_queries']} training queries.",
            "",
            "The bracketed interval is a 95 % percentile bootstrap of the ratio over the held-out "
            "sessions (2000 resamples; a session's reads are drawn together, and the better baseline is "
            "chosen again in each resample): how far the ratio could move with another sample of readers "
            "and sessions from the same simulation.",
            "",
        ]
        head = ["window"]
        for m in (f"HR@{k}", f"nDCG@{k}"):
            head += [f"ranker {m} ÷ best baseline [95 % interval]", "target ≥ 1.1"]
            head += [f"oracle {m} ÷ best baseline"]
            head += [f"{VISIBLE_ORACLE} {m} ÷ best baseline"] if visible else []
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for wname, row in checks.items():
            cells = [wname]
            for m in (f"hr@{k}", f"ndcg@{k}"):
                ci = row.get(f"{m}_ratio_ci95")
                shown = (
                    f"{row[f'{m}_ratio']} [{ci[0]}, {ci[1]}]"
                    if isinstance(ci, list)
                    else str(row[f"{m}_ratio"])
                )
                cells += [shown, "met" if row[f"{m}_met"] else "not met"]
                cells += [str(row.get(f"{m}_oracle_ratio", "–"))]
                cells += [str(row.get(f"{m}_visible_oracle_ratio", "–"))] if visible else []
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
