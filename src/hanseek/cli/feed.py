"""`hanseek feed`: Personalized feed: ingest, events, evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.markup import escape

from hanseek.cli.common import console, err_console, open_db, progress, settings
from hanseek.files import write_text_atomic

if TYPE_CHECKING:
    from hanseek.feed.service import FeedService
    from hanseek.store.db import Database

app = typer.Typer(help="Personalized feed: ingest, events, evaluation.", no_args_is_help=True)


def _fail(msg: str) -> None:
    err_console.print(f"[red]error:[/red] {escape(msg)}")  # ids and file names are not markup
    raise typer.Exit(1)


def _service(db: Database, with_encoder: bool = False) -> FeedService:
    from hanseek.feed.service import FeedService
    from hanseek.feed.settings import load_feed_settings

    s = settings()
    # A one-shot command needs neither the in-process index nor warm buffers.
    fs = load_feed_settings(memory_index=False, warm_cache_days=0)
    if not with_encoder:
        return FeedService(db, dim=s.embed_dim, settings=fs)
    from hanseek.encoders.reembed import ActiveEncoder

    active = ActiveEncoder(s, db)  # the catalogue, not a pointer a crash left stale
    active.get()  # load now: a missing model fails before anything is read or written
    # A model switch that commits while this command runs: the next batch is encoded with the new one.
    return FeedService(
        db, dim=s.embed_dim, settings=fs, encoder=active.get, encoder_is_active=active.is_active
    )


@app.command("ingest")
def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Posts as .jsonl or .csv")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Posts per transaction")] = 256,
) -> None:
    """Insert or update posts: id, community, title, body, category, created_at, likes, comments,
    author, optional embedding (JSON Lines only). Every row's fields are validated before anything is
    written; then each batch is one transaction."""
    from hanseek.feed.errors import FeedError
    from hanseek.feed.files import read_models
    from hanseek.feed.models import PostIn

    try:
        posts = read_models(file, PostIn)
    except FeedError as e:
        _fail(str(e))
    if not posts:
        _fail(f"{file}: no posts in it")
    s = settings()
    need_encoder = any(p.embedding is None for p in posts)
    totals = {"inserted": 0, "updated": 0, "encoded": 0}
    with open_db(s) as db:
        svc = _service(db, with_encoder=need_encoder)
        # The one check `read_models` cannot make (the dimension is the database's): before any batch,
        # so a bad row 3 does not leave rows 1-2 stored.
        for row, p in enumerate(posts, start=1):
            if p.embedding is not None and len(p.embedding) != svc.dim:
                _fail(
                    f"{file}: row {row} (post {p.id}): embedding has {len(p.embedding)} values, "
                    f"expected {svc.dim}"
                )
        with progress() as bar:
            task = bar.add_task("ingesting posts", total=len(posts), info="")
            for start in range(0, len(posts), batch_size):
                chunk = posts[start : start + batch_size]
                try:
                    r = svc.ingest_posts(chunk)
                except FeedError as e:
                    _fail(f"batch starting at row {start + 1}: {e}{_earlier(start)}")
                for key in totals:
                    totals[key] += getattr(r, key)
                bar.update(task, advance=len(chunk), info=f"{totals['encoded']} encoded")
    console.print(", ".join(f"{k}={v}" for k, v in totals.items()))


@app.command("events")
def events(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Events as .jsonl or .csv")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
) -> None:
    """Record interactions: user_id, post_id, kind (read|like|comment), at, optional id (idempotency)."""
    from hanseek.feed.errors import FeedError
    from hanseek.feed.files import read_models
    from hanseek.feed.models import EventIn

    try:
        rows = read_models(file, EventIn)
    except FeedError as e:
        _fail(str(e))
    if not rows:
        _fail(f"{file}: no events in it")
    totals = {"accepted": 0, "duplicates": 0, "users_created": 0}
    with open_db(settings()) as db:
        svc = _service(db)
        with progress() as bar:
            task = bar.add_task("recording events", total=len(rows), info="")
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                try:
                    r = svc.record_events(chunk)
                except FeedError as e:
                    _fail(f"batch starting at row {start + 1}: {e}{_earlier(start)}")
                for key in totals:
                    totals[key] += getattr(r, key)
                bar.update(task, advance=len(chunk), info=f"{totals['duplicates']} duplicates")
    console.print(", ".join(f"{k}={v}" for k, v in totals.items()))


@app.command("memberships")
def memberships(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="user_id, community rows")],
) -> None:
    """Add users to communities (creates users and communities that are new)."""
    from hanseek.feed.errors import FeedError
    from hanseek.feed.files import read_models
    from hanseek.feed.models import MembershipIn

    try:
        rows = read_models(file, MembershipIn)
    except FeedError as e:
        _fail(str(e))
    if not rows:
        _fail(f"{file}: no memberships in it")
    by_user: dict[str, list[str]] = {}
    for r in rows:
        by_user.setdefault(r.user_id, []).append(r.community)
    with open_db(settings()) as db:
        _service(db).add_memberships(by_user)
    console.print(f"{len(rows)} memberships for {len(by_user)} users")


def _earlier(start: int) -> str:
    """What a failed batch leaves: the batches before it were committed (sending the file again is
    safe: posts are upserted by id, events with an `id` or `at` are not counted twice)."""
    if start == 0:
        return ""
    return f" (rows 1-{start}, in earlier batches, were stored; sending the file again is safe)"


def _days(value: str) -> int | None:
    """`--days`: a number of days, or "all" (as the API's `days=all`)."""
    if value.strip().lower() == "all":
        return None
    try:
        return int(value)
    except ValueError:
        msg = f"{value!r} is neither a number of days nor 'all'"
        raise typer.BadParameter(msg, param_hint="--days") from None


@app.command("show")
def show(
    user: Annotated[str, typer.Argument(help="User id")],
    k: Annotated[
        int, typer.Option("-k", "--k", min=1, help="How many posts: 1 to HANSEEK_FEED_MAX_K (200 unless set)")
    ] = 10,
    days: Annotated[str, typer.Option(help="Window in days, or 'all' for no window")] = "30",
    path: Annotated[str, typer.Option(help="auto | exact | exact-sql | approx")] = "auto",
    method: Annotated[str, typer.Option(help="ranked | similar")] = "ranked",
) -> None:
    """Print a user's feed."""
    from hanseek.feed.errors import FeedError

    with open_db(settings()) as db:
        svc = _service(db)
        try:
            out = svc.feed(user, k=k, days=_days(days), path=path, method=method)  # type: ignore[arg-type]
        except FeedError as e:
            _fail(str(e))
    console.print(
        f"[bold]{out.kind}[/] path={out.path} candidates={out.estimated_candidates} {out.took_ms} ms"
    )
    for i, it in enumerate(out.items, 1):
        why = f"  ← {it.why.title} ({it.why.similarity:.2f})" if it.why else ""
        console.print(f"{i:2d}. {escape(f'[{it.community}] {it.title}')}  {it.score:.3f}{escape(why)}")


@app.command("rebuild-profiles")
def rebuild_profiles() -> None:
    """Recompute every user's vector from their events (after changing the decay half-life)."""
    with open_db(settings()) as db:
        n = _service(db).rebuild_profiles()
    console.print(f"{n} profiles rebuilt")


@app.command("hnsw-index")
def hnsw_index(
    m: Annotated[int | None, typer.Option(help="Neighbours per node (pgvector default 16)")] = None,
    ef_construction: Annotated[
        int | None, typer.Option(help="Build-time candidate list (pgvector default 64)")
    ] = None,
    maintenance_work_mem: Annotated[str, typer.Option(help="Memory for the build")] = "2GB",
) -> None:
    """Show the posts' HNSW graph parameters, or rebuild it with new ones (concurrently: the
    service keeps reading and writing; the new graph replaces the old one when it is complete)."""
    import psycopg

    from hanseek.feed import hnsw

    with open_db(settings()) as db:
        with db.connection() as conn:
            now = hnsw.current_params(conn)
        if m is None and ef_construction is None:
            console.print(
                "no HNSW index on posts"
                if now is None
                else f"m={now.m} ef_construction={now.ef_construction}"
            )
            return
        base = now or hnsw.PGVECTOR_DEFAULT
        want = hnsw.HnswParams(
            base.m if m is None else m, base.ef_construction if ef_construction is None else ef_construction
        )
        console.print(
            f"building m={want.m} ef_construction={want.ef_construction} (this can take a while) ..."
        )
        try:
            seconds = hnsw.rebuild(db.url, want, maintenance_work_mem=maintenance_work_mem)
        except ValueError as exc:
            _fail(str(exc))
        except psycopg.Error as exc:  # the old index still serves
            _fail(f"the rebuild failed, the old index is unchanged: {exc}")
        console.print(f"HNSW index rebuilt in {seconds:.0f} s")


@app.command("eval")
def evaluate(
    sets: Annotated[list[str] | None, typer.Option("--set", help="Evaluation set(s); default: all")] = None,
    shared_data: Annotated[Path, typer.Option(file_okay=False, help="The shared data folder")] = Path(
        "../shared/data"
    ),
    out: Annotated[
        Path | None, typer.Option(file_okay=False, help="Folder for the JSON + Markdown report")
    ] = None,
    max_queries: Annotated[
        int,
        typer.Option(
            min=0,
            help="Held-out sessions per set (sampled; with --unit read, each of their reads is a query); "
            "0: every one",
        ),
    ] = 1000,
    unit: Annotated[
        str, typer.Option(help="read: a query before each held-out read (default) | session: one per session")
    ] = "read",
    k: Annotated[int, typer.Option(min=1, max=200)] = 20,
    rebuild: Annotated[bool, typer.Option(help="Rebuild the sets (users/events) from the data")] = False,
    ranker: Annotated[bool, typer.Option(help="Train and evaluate the re-ranker (and the blend)")] = True,
    ablation: Annotated[bool, typer.Option(help="Also one ranker per left-out feature group")] = False,
    train_queries: Annotated[int, typer.Option(min=50, help="Training sessions sampled per set")] = 5000,
    oracle_parts: Annotated[
        bool,
        typer.Option(help="Also the oracle without its interest / within-session terms (hidden taste)"),
    ] = False,
) -> None:
    """Offline replay evaluation of the feed methods on evaluation sets built from ../shared/data."""
    from hanseek.feed.evalrun import EvalRunner
    from hanseek.feed.replay import QUERY_UNITS, QueryUnit

    if unit not in QUERY_UNITS:
        _fail(f"unknown --unit {unit!r}; known: {', '.join(QUERY_UNITS)}")
    s = settings()
    if not shared_data.is_dir():
        _fail(f"{shared_data} not found (pass --shared-data)")
    runner = EvalRunner(
        s, shared_data, train_queries=train_queries, unit=cast(QueryUnit, unit), oracle_parts=oracle_parts
    )
    names = sets or runner.set_names()
    unknown = [n for n in names if n not in runner.set_names()]
    if unknown:
        _fail(f"unknown set(s) {unknown}; known: {runner.set_names()}")
    with progress() as bar:
        report = runner.run(
            names,
            k=k,
            max_queries=max_queries or None,
            rebuild=rebuild,
            ranker=ranker,
            ablation=ablation,
            bar=bar,
        )
    folder = out or s.data_dir / "feed" / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "feed-eval.json", json.dumps(report.data, ensure_ascii=False, indent=2) + "\n")
    write_text_atomic(folder / "feed-eval.md", report.markdown)
    console.print(report.markdown, markup=False)
    written = " and ".join(escape(str(folder / name)) for name in ("feed-eval.json", "feed-eval.md"))
    console.print(f"written to {written}")


@app.command("train-ranker")
def train_ranker(
    set_name: Annotated[
        str | None, typer.Option("--set", help="Train on an evaluation set (see `feed eval`)")
    ] = None,
    from_db: Annotated[bool, typer.Option("--from-db", help="Train on this database's events")] = False,
    name: Annotated[str | None, typer.Option(help="Model name (default: <source>-<kind>-<date>)")] = None,
    activate: Annotated[bool, typer.Option(help="Serve it right away (hot swap)")] = True,
    kind: Annotated[str, typer.Option(help="auto | hgb | logistic")] = "auto",
    shared_data: Annotated[Path, typer.Option(file_okay=False, help="The shared data folder")] = Path(
        "../shared/data"
    ),
    train_queries: Annotated[int, typer.Option(min=50)] = 5000,
) -> None:
    """Train the feed re-ranker with a time split (earlier sessions train, later ones validate),
    register it, and (by default) make it the serving model."""
    from datetime import UTC, datetime

    from hanseek.feed.blas import single_threaded_blas
    from hanseek.feed.ranker import registry
    from hanseek.feed.ranker.train import train

    if (set_name is None) == (not from_db):
        _fail("give either --set NAME or --from-db")
    kinds = ("hgb", "logistic") if kind == "auto" else (kind,)
    if any(k not in ("hgb", "logistic") for k in kinds):
        _fail("kind must be auto, hgb or logistic")
    single_threaded_blas()
    s = settings()
    with open_db(s) as db:
        if from_db:
            from hanseek.feed.ranker.dbexport import export

            try:
                es, vecs = export(db)
            except ValueError as e:
                _fail(str(e))
            source = "db"
        else:
            from hanseek.feed.evalrun import EvalRunner

            runner = EvalRunner(s, shared_data)
            if set_name not in runner.set_names():
                _fail(f"unknown set {set_name!r}; known: {runner.set_names()}")
            with progress() as bar:
                es, vecs = runner.load(str(set_name), bar=bar)
            source = str(set_name)
        if name is not None:
            try:  # before training: a bad name should not cost the training run
                registry.check_name(name)
            except registry.RankerNameError as e:
                _fail(str(e))
        with console.status("training (time split)…"):
            try:
                trained = train(es, vecs, kinds=kinds, max_train_queries=train_queries)
            except ValueError as e:  # e.g. too few events for a time split
                _fail(str(e))
        model_name = name or f"{source}-{trained.model.kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        try:
            path = registry.register(db, s.data_dir, model_name, trained.model, activate=activate)
        except registry.RankerNameError as e:
            _fail(str(e))
        except Exception as e:  # the catalogue write failed: the training is lost, say why
            _fail(f"could not register {model_name!r}: {e}")
    console.print(
        f"[bold]{model_name}[/] ({trained.model.kind}, {trained.train_rows} rows, {trained.seconds}s)"
    )
    for k, v in trained.candidates.items():
        console.print(f"  validation {k}: {v}")
    console.print(f"saved to {escape(str(path))}; {'active' if activate else 'not active'}")


@app.command("rankers")
def rankers(
    use: Annotated[str | None, typer.Option(help="Make this model the serving one")] = None,
    blend: Annotated[bool, typer.Option("--blend", help="Serve the hand-tuned blend (no model)")] = False,
) -> None:
    """List trained re-rankers, or switch the serving one."""
    from hanseek.feed.ranker import registry

    with open_db(settings()) as db:
        if use or blend:
            try:
                registry.activate(db, None if blend else use)
            except KeyError:
                _fail(f"no ranker named {use!r}")
        for r in registry.listing(db):
            flag = "*" if r["active"] else " "
            console.print(f"{flag} {r['name']}  {r['kind']}  {r['created_at']:%Y-%m-%d %H:%M}")
