"""`hanseek keywords`: Word weights, corpora and blanks."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hanseek.cli.common import console, err_console, open_db, progress, report_files, settings
from hanseek.files import write_text_atomic

if TYPE_CHECKING:
    from hanseek.store.db import Database

app = typer.Typer(help="Word weights, corpora and blanks.", no_args_is_help=True)
corpus_app = typer.Typer(help="Subject corpora: documents, dictionary, keyword list.", no_args_is_help=True)
background_app = typer.Typer(help="The general background corpus statistics.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
app.add_typer(background_app, name="background")

MethodOpt = Annotated[str, typer.Option("--method", "-m", help="dictionary | tfidf | bm25 | combined | tf")]
ALL_OTHERS = "Leave one note out: corpus, dictionary and keywords from all other notes"
SAME_SUBJECT = "Same subject only: corpus, dictionary and keywords from the other notes of the subject"
SubjectOpt = Annotated[str | None, typer.Option("--subject", "-s", help="Subject corpus to weigh against")]


def _read_text(text: str | None, file: Path | None) -> str:
    if file is not None:
        return file.read_text(encoding="utf-8-sig")
    if text is not None:
        return text
    if not sys.stdin.isatty():
        return sys.stdin.read()
    raise typer.BadParameter("give TEXT, --file or text on stdin")


def _maybe_db(subject: str | None) -> AbstractContextManager[Database | None]:
    """The database only when a subject's statistics are needed: without one, the background
    corpus suffices and no database server has to start."""
    return open_db(settings()) if subject is not None else nullcontext(None)


def _fail(msg: str) -> None:
    err_console.print(f"[red]error:[/red] {escape(msg)}")  # subjects, words and paths are not markup
    raise typer.Exit(1)


def _positive(value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise typer.BadParameter("must be greater than 0")
    return value


@contextmanager
def _refusals(subject: str | None = None) -> Iterator[None]:
    """What the keyword service refuses (a bad name or text, an unknown or stale subject): one
    `error:` line and exit 1, as the API answers it with a 4xx."""
    from hanseek.keywords.service import InvalidText
    from hanseek.keywords.store import StaleStatistics, UnknownSubject

    try:
        yield
    except (InvalidText, StaleStatistics) as exc:
        _fail(str(exc))
    except UnknownSubject:
        _fail(f"unknown subject {subject!r}")


@corpus_app.command("add")
def corpus_add(
    files: Annotated[
        list[Path],
        typer.Argument(
            exists=True, dir_okay=False, help="Text (.txt), Markdown (.md) or JSON Lines (.jsonl) files"
        ),
    ],
    subject: Annotated[str, typer.Option("--subject", "-s", help="Subject name, e.g. 한국사")],
    split: Annotated[str, typer.Option(help="auto | none | section | paragraph")] = "auto",
) -> None:
    """Add documents to a subject's corpus (statistics are updated in the same transaction)."""
    from hanseek.keywords.ingest import DocInput, IngestError, Split, read_documents
    from hanseek.keywords.service import KeywordService

    docs: list[DocInput] = []
    try:
        mode = Split(split)
        for f in files:
            docs.extend(read_documents(f, split=mode))
    except (IngestError, ValueError, OSError) as exc:
        _fail(str(exc))
    if not docs:
        _fail("no documents found in the given files")
    s = settings()
    with open_db(s) as db:
        svc = KeywordService(db, max_text_chars=max(s.max_text_chars, max(len(d.body) for d in docs)))
        with progress() as bar:
            task = bar.add_task(f"adding to {escape(subject)}", total=len(docs), info="")
            with _refusals(subject):
                stored = svc.add_documents(subject, docs, on_progress=lambda n: bar.advance(task, n))
        with _refusals(subject):
            info = svc.subject(subject)
    new = sum(d.created for d in stored)
    console.print(
        f"{escape(subject)}: {new} new documents ({len(stored) - new} already present); "
        f"corpus now {info.n_docs} documents, {info.total_terms:,} terms"
    )


@corpus_app.command("list")
def corpus_list() -> None:
    """Subjects with their corpus sizes."""
    from hanseek.keywords.service import KeywordService

    with open_db(settings()) as db:
        subjects = KeywordService(db).subjects()
    table = Table("subject", "documents", "terms", "dictionary", "keywords", "floor")
    for sub in subjects:
        table.add_row(
            escape(sub.name),
            str(sub.n_docs),
            f"{sub.total_terms:,}",
            str(sub.dictionary_size),
            str(sub.keyword_count),
            "" if sub.floor is None else f"{sub.floor:.2f}",
        )
    console.print(table)


@corpus_app.command("remove")
def corpus_remove(
    subject: Annotated[str, typer.Option("--subject", "-s")],
    doc_ids: Annotated[list[int], typer.Argument(help="Document ids (see `corpus docs`)")],
) -> None:
    """Remove documents (their counts are subtracted from the statistics). Exits 1 when an id was
    not in the subject (the API's 404), after removing the others."""
    from hanseek.keywords.service import KeywordService
    from hanseek.keywords.store import UnknownSubject

    missing = 0
    with open_db(settings()) as db:
        svc = KeywordService(db)
        try:
            for i in doc_ids:
                if svc.remove_document(subject, i):
                    console.print(f"removed {i}")
                else:
                    missing += 1
                    err_console.print(f"[red]error:[/red] document {i} is not in {escape(subject)}")
        except UnknownSubject:
            _fail(f"unknown subject {subject!r}")
    if missing:
        raise typer.Exit(1)


@corpus_app.command("docs")
def corpus_docs(
    subject: Annotated[str, typer.Option("--subject", "-s")],
    limit: Annotated[int, typer.Option(min=1)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    after: Annotated[
        int | None, typer.Option(min=0, help="Start after this document id (the last one listed)")
    ] = None,
) -> None:
    """List a subject's documents."""
    from hanseek.keywords.service import KeywordService

    with open_db(settings()) as db, _refusals(subject):
        docs = KeywordService(db).documents(subject, limit=limit, offset=offset, after=after)
    table = Table("id", "title", "source", "terms", "chars")
    for d in docs:
        table.add_row(str(d.id), escape(d.title or ""), escape(d.source or ""), str(d.n_terms), str(d.chars))
    console.print(table)


@corpus_app.command("dictionary")
def corpus_dictionary(
    subject: Annotated[str, typer.Option("--subject", "-s")],
    csv_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV of word,weight rows")],
    merge: Annotated[
        bool, typer.Option(help="Merge into the existing dictionary instead of replacing it")
    ] = False,
) -> None:
    """Set a subject's dictionary (word → weight) from a CSV file."""
    from hanseek.keywords.ingest import IngestError, parse_dictionary_csv
    from hanseek.keywords.service import KeywordService

    try:
        weights = parse_dictionary_csv(csv_file.read_text(encoding="utf-8-sig"))
    except (IngestError, OSError) as exc:
        _fail(str(exc))
    with open_db(settings()) as db, _refusals(subject):
        n = KeywordService(db).set_dictionary(subject, weights, replace=not merge)
    console.print(f"{escape(subject)}: dictionary set ({n} words)")


@corpus_app.command("keywords")
def corpus_keywords(
    subject: Annotated[str, typer.Option("--subject", "-s")],
    words_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="One word per line (or CSV, first column)")
    ],
    floor: Annotated[float | None, typer.Option(min=0, max=1, help="Minimum weight of listed words")] = None,
    merge: bool = False,
) -> None:
    """Set a subject's keyword list (listed words never weigh less than the floor)."""
    from hanseek.keywords.ingest import parse_word_list
    from hanseek.keywords.service import KeywordService

    words = parse_word_list(words_file.read_text(encoding="utf-8-sig"))
    with open_db(settings()) as db, _refusals(subject):
        n = KeywordService(db).set_keywords(subject, words, floor=floor, replace=not merge)
    console.print(f"{escape(subject)}: {n} keywords" + (f", floor {floor:.2f}" if floor is not None else ""))


@app.command("weights")
def weights(
    text: Annotated[str | None, typer.Argument(help="Page text (or --file, or stdin)")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", exists=True, dir_okay=False)] = None,
    subject: SubjectOpt = None,
    method: MethodOpt = "bm25",
    k1: Annotated[float, typer.Option(min=0, max=10, help="BM25 term-frequency saturation")] = 1.2,
    b: Annotated[float, typer.Option(min=0, max=1, help="BM25 length normalisation strength")] = 0.75,
    length_norm: Annotated[bool, typer.Option(help="BM25 page-length normalisation")] = True,
    floor: Annotated[bool, typer.Option(help="Apply the subject's keyword floor")] = True,
    top: Annotated[int, typer.Option(min=1, help="Show the best N words")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Weigh the words of a page."""
    from hanseek.keywords.scoring import ScoringParams
    from hanseek.keywords.service import InvalidText, KeywordService, method_of
    from hanseek.keywords.store import UnknownSubject

    page_text = _read_text(text, file)
    s = settings()
    try:
        params = ScoringParams(method=method_of(method), k1=k1, b=b, length_norm=length_norm)
        with _maybe_db(subject) as db:
            page = KeywordService(db, max_text_chars=s.max_text_chars).weights(
                page_text, subject, params, use_floor=floor
            )
    except InvalidText as exc:
        _fail(str(exc))
    except UnknownSubject:
        _fail(f"unknown subject {subject!r}")
    rows = page.weights[:top]
    if as_json:
        out = [
            {
                "term": w.term,
                "tag": w.tag,
                "weight": round(w.weight, 6),
                "count": w.count,
                "components": w.components,
            }
            for w in rows
        ]
        console.print_json(json.dumps(out, ensure_ascii=False))
        return
    table = Table("word", "tag", "weight", "count", "idf", "df (subject/background)")
    for w in rows:
        c = w.components
        idf = f"{c['idf']:.3f}" if "idf" in c else ""
        df = f"{c.get('df_subject', '')}/{c.get('df_background', '')}" if "idf" in c else ""
        table.add_row(
            escape(w.term),
            w.tag,
            f"{w.weight:.3f}" + (" ▲" if c.get("floored") else ""),
            str(w.count),
            idf,
            df,
        )
    console.print(table)


@app.command("cloze")
def cloze(
    text: Annotated[str | None, typer.Argument(help="Page text (or --file, --image, or stdin)")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", exists=True, dir_okay=False)] = None,
    image: Annotated[
        Path | None,
        typer.Option("--image", exists=True, dir_okay=False, help="A page photo (OCR with Tesseract)"),
    ] = None,
    subject: SubjectOpt = None,
    method: MethodOpt = "bm25",
    ratio: Annotated[
        float | None,
        typer.Option(max=1.0, callback=_positive, help="Share of words to blank, 0 < r <= 1"),
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Number of blanks")] = None,
    duplicates: Annotated[bool, typer.Option(help="Blank every occurrence of a chosen word")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Make a numbered cloze (빈칸) worksheet and its answer key."""
    from hanseek.keywords.cloze import ClozeOptions
    from hanseek.keywords.ocr import InvalidImage, OcrUnavailable
    from hanseek.keywords.scoring import ScoringParams
    from hanseek.keywords.service import InvalidText, KeywordService, method_of
    from hanseek.keywords.store import UnknownSubject

    if ratio is not None and count is not None:
        raise typer.BadParameter("give either --ratio or --count")
    s = settings()
    try:
        with _maybe_db(subject) as db:
            svc = KeywordService(db, max_text_chars=s.max_text_chars)
            page_text = svc.ocr_text(image.read_bytes()) if image else _read_text(text, file)
            cz, _ = svc.cloze(
                page_text,
                subject,
                ScoringParams(method=method_of(method)),
                ClozeOptions(ratio=ratio, count=count, allow_duplicates=duplicates),
            )
    except (InvalidText, InvalidImage, OcrUnavailable) as exc:
        _fail(str(exc))
    except UnknownSubject:
        _fail(f"unknown subject {subject!r}")
    if as_json:
        out = {"text": cz.text, "blanks": [b.__dict__ for b in cz.blanks], "candidates": cz.candidates}
        console.print_json(json.dumps(out, ensure_ascii=False))
        return
    # soft_wrap: the page's own lines, not Rich's wrapping at the console width (80 columns when
    # redirected, Hangul two each), which put hard breaks into a worksheet saved with `> page.txt`.
    console.print(cz.text, markup=False, highlight=False, soft_wrap=True)
    console.print()
    console.print("[bold]Answers[/bold]")
    for b in cz.blanks:
        console.print(f"  ({b.number}) {b.answer}", markup=False, highlight=False)


@app.command("eval")
def eval_cmd(
    notes: Annotated[
        Path,
        typer.Option(
            exists=True, file_okay=False, help="Folder of Markdown study notes with **bold** key words"
        ),
    ] = Path("../shared/data/study_notes"),
    out: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="Write OUT.md and OUT.json (e.g. docs/reports/keywords-eval)"),
    ] = None,
    page_chars: Annotated[int, typer.Option(help="Characters per evaluated page")] = 2000,
) -> None:
    """Precision/recall/F1 of blanks against the students' bold key words (leave one note out)."""
    from hanseek.keywords.background import load_background
    from hanseek.keywords.evaluation import EvalReport, evaluate, load_note, note_paths
    from hanseek.keywords.terms import TermExtractor
    from hanseek.text.analyzer import default_analyzer

    paths = note_paths(notes)
    if len(paths) < 2:
        _fail(f"need at least two notes in {notes}")
    if out:
        report_files(out.with_suffix(".md"), out.with_suffix(".json"))
    extractor = TermExtractor(default_analyzer())
    background = load_background()
    with progress() as bar:
        task = bar.add_task("analysing notes", total=len(paths), info="")
        loaded = []
        for p in paths:
            loaded.append(load_note(p, extractor, page_chars=page_chars))
            bar.advance(task)
        task = bar.add_task("evaluating", total=2 * len(paths), info="")
        results = {
            ALL_OTHERS: evaluate(loaded, background, on_note=lambda _: bar.advance(task)),
            SAME_SUBJECT: evaluate(
                loaded, background, same_subject=True, on_note=lambda _: bar.advance(task)
            ),
        }
        bar.update(task, completed=2 * len(paths))
    command = "hanseek keywords eval --notes ../shared/data/study_notes" + (f" --out {out}" if out else "")
    report = EvalReport(results, command, background.meta)
    for title, result in results.items():
        table = Table("method", "occ P", "occ R", "occ F1", "word P", "word R", "word F1", title=title)
        for name, m in result["methods"].items():
            o, w = m["occurrences"], m["words"]
            table.add_row(
                name,
                *(f"{o[k]:.3f}" for k in ("precision", "recall", "f1")),
                *(f"{w[k]:.3f}" for k in ("precision", "recall", "f1")),
            )
        console.print(table)
        console.print(f"chance (occurrence precision): {result['chance_precision_occurrences']:.3f}")
    if out:
        payload = {"command": command, "background": background.meta, "settings": results}
        write_text_atomic(out.with_suffix(".json"), json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        write_text_atomic(out.with_suffix(".md"), report.markdown())
        wrote = " and ".join(escape(str(out.with_suffix(ext))) for ext in (".md", ".json"))
        console.print(f"wrote {wrote}")


@background_app.command("build")
def background_build(
    shared_data: Annotated[
        Path, typer.Option(exists=True, file_okay=False, help="Folder with nsmc/, korsts/, kornli/")
    ] = Path("../shared/data"),
    out: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Output file (default: the shipped statistics file)")
    ] = None,
    min_df: Annotated[int, typer.Option(min=1, help="Keep terms in at least this many documents")] = 3,
    workers: Annotated[int, typer.Option(min=1, help="Kiwi worker threads")] = 2,
) -> None:
    """Rebuild the general background document frequencies from public corpora."""
    from hanseek.keywords.background import (
        DEFAULT_PATH,
        build_background,
        shared_corpus_docs,
        write_background,
    )
    from hanseek.keywords.terms import TermExtractor
    from hanseek.text.analyzer import KoreanAnalyzer

    docs, sources = shared_corpus_docs(shared_data)
    if not docs:
        _fail(f"no corpora found under {shared_data}")
    extractor = TermExtractor(KoreanAnalyzer(num_workers=workers))
    with progress() as bar:
        task = bar.add_task("counting", total=len(docs), info="")
        bg = build_background(docs, extractor, on_batch=lambda n: bar.advance(task, n))
    target = out or DEFAULT_PATH
    n = write_background(bg, target, min_df=min_df, sources=sources)
    console.print(
        f"{bg.n_docs:,} documents, {len(bg.df):,} terms ({n:,} with df >= {min_df}) → {escape(str(target))}"
    )
