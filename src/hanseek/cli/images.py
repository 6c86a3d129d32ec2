"""`hanseek images`: the image collection: add, search, similar, list, remove, reindex, gc, eval."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hanseek.cli.common import console, err_console, open_db, progress, report_files, settings
from hanseek.files import write_text_atomic

if TYPE_CHECKING:
    from hanseek.images.service import ImageService, SearchOutcome

app = typer.Typer(
    help="Image collection: add, search, similar, list, remove, reindex, gc, eval.", no_args_is_help=True
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
KOpt = Annotated[int, typer.Option("-k", help="Number of results")]
TagOpt = Annotated[
    list[str] | None, typer.Option("--tag", "-t", help="Only images with this tag (repeatable; a,b: both)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
PATHS = ("auto", "exact", "hnsw")


def _check_path(value: str) -> str:
    if value not in PATHS:
        raise typer.BadParameter(f"must be one of {', '.join(PATHS)}")
    return value


PathOpt = Annotated[str, typer.Option("--path", callback=_check_path, help="auto | exact | hnsw")]


def _fail(msg: str) -> None:
    err_console.print(f"[red]error:[/red] {escape(msg)}")  # paths, captions and tags are not markup
    raise typer.Exit(1)


@contextmanager
def _service() -> Iterator[ImageService]:
    from hanseek.encoders.base import EncoderError
    from hanseek.images.service import ImageService

    s = settings()
    with open_db(s) as db:
        try:
            svc = ImageService.build(db, s)
        except EncoderError as exc:
            _fail(str(exc))
        try:
            yield svc
        finally:
            svc.close()


def expand_paths(paths: list[Path], recursive: bool = True) -> list[Path]:
    """Image files named directly, plus those in the given directories (sorted, by suffix)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = p.rglob("*") if recursive else p.glob("*")
            out.extend(sorted(f for f in found if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            _fail(f"{p} does not exist")
    return out


class CaptionsError(ValueError):
    pass


@contextmanager
def _csv_errors(reader: csv.DictReader[str], path: Path) -> Iterator[None]:
    """A row (or header) the csv module refuses, e.g. a field over its 131,072-character limit (until
    session 18 a traceback), as a CaptionsError naming the line."""
    try:
        yield
    except csv.Error as exc:
        raise CaptionsError(f"{path}, line {reader.reader.line_num}: {exc}") from None


def read_captions(path: Path) -> dict[str, tuple[str | None, list[str]]]:
    """A CSV with columns `file` and `caption` (or `caption_ko`/`caption_en`) and optional `tags`
    (`;` or `,` separated). A `file` with a folder part is a path relative to the CSV's folder and
    matches that file only (keyed by its absolute path); a bare file name matches a file of that name
    in any folder (keyed by the name)."""
    table: dict[str, tuple[str | None, list[str]]] = {}
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        with _csv_errors(reader, path):
            columns = set(reader.fieldnames or [])
            wanted = {"caption", "caption_ko", "caption_en", "tags", "category"}
            if "file" not in columns or not columns & wanted:
                raise CaptionsError(
                    f"{path}: needs a 'file' column and a 'caption' (or caption_ko / caption_en) or 'tags' "
                    f"column; its header has {', '.join(sorted(columns)) or 'nothing'}"
                )
            for row in reader:
                caption = row.get("caption") or row.get("caption_ko") or row.get("caption_en") or None
                raw_tags = row.get("tags") or row.get("category") or ""
                tags = [t.strip() for t in raw_tags.replace(";", ",").split(",") if t.strip()]
                key = (row.get("file") or "").strip()
                if not key:
                    continue
                if Path(key).parent == Path("."):  # a bare name (`cat.png`, `./cat.png`)
                    table[Path(key).name] = (caption, tags)
                else:  # `a/cat.png` is that file only, not every `cat.png`
                    table[str((path.parent / key).resolve())] = (caption, tags)
    return table


@app.command("add")
def add(
    paths: Annotated[list[Path], typer.Argument(help="Image files and/or directories")],
    caption: Annotated[str | None, typer.Option(help="Caption for every file")] = None,
    tags: Annotated[str | None, typer.Option(help="Comma-separated tags for every file")] = None,
    captions: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="CSV with file,caption[,tags] per image")
    ] = None,
    recursive: Annotated[bool, typer.Option(help="Descend into sub-directories")] = True,
    batch: Annotated[int, typer.Option(min=1, max=64, help="Files per transaction")] = 16,
) -> None:
    """Add images: decode safely, skip duplicates, encode, store with thumbnails."""
    from hanseek.images.service import Upload, split_tags

    files = expand_paths(paths, recursive)
    if not files:
        _fail("no image files found")
    try:
        meta = read_captions(captions) if captions else {}
    except (CaptionsError, UnicodeDecodeError) as exc:
        _fail(str(exc))
    matched: set[str] = set()
    counts = {"added": 0, "duplicate": 0, "rejected": 0}
    problems: list[tuple[str, str]] = []
    look_alikes: list[str] = []
    with _service() as svc, progress() as bar:
        task = bar.add_task("adding images", total=len(files), info="")
        for start in range(0, len(files), batch):
            chunk = files[start : start + batch]
            uploads = []
            for f in chunk:
                key = str(f.resolve()) if str(f.resolve()) in meta else f.name
                if key in meta:
                    matched.add(key)
                cap, tag_list = meta.get(key, (None, []))
                uploads.append(Upload(f.read_bytes(), f.name, caption or cap, [*split_tags(tags), *tag_list]))
            for f, res in zip(chunk, svc.add(uploads), strict=True):
                counts[res.status] += 1
                if res.status == "rejected":
                    problems.append((str(f), res.message or res.reason or "rejected"))
                elif res.near_duplicate_of is not None:
                    # Stored, as the API does, and said, as its `near_duplicate_of` does (until
                    # session 19 the CLI showed nothing of it).
                    look_alikes.append(
                        f"{f} (id {res.id}) looks like image {res.near_duplicate_of} "
                        f"(score {res.near_duplicate_score:.3f})"
                    )
            bar.update(task, advance=len(chunk), info=f"{counts['added']} added")
    for name, msg in problems:
        err_console.print(f"[yellow]skipped[/yellow] {escape(name)}: {escape(msg)}")
    for line in look_alikes:
        console.print(f"[cyan]near-duplicate[/cyan] {escape(line)}", soft_wrap=True)  # one line each
    # A CSV row is keyed by its absolute path (a `file` with a folder) or by its bare file name.
    unused = sorted(_csv_label(k, captions) for k in meta if k not in matched) if captions else []
    if unused:
        err_console.print(
            f"[yellow]captions without a matching file:[/yellow] {escape(', '.join(unused[:10]))}"
        )
    console.print(
        f"{counts['added']} added, {counts['duplicate']} duplicate(s), {counts['rejected']} rejected"
    )
    if counts["rejected"] and not counts["added"] and not counts["duplicate"]:
        raise typer.Exit(1)  # nothing usable: as the API's 422


def _csv_label(key: str, csv_path: Path) -> str:
    """A captions key as the CSV wrote it: relative to the CSV's folder where it is a path."""
    if not Path(key).is_absolute():
        return key
    try:
        return str(Path(key).relative_to(csv_path.parent.resolve()))
    except ValueError:
        return key


def _print(outcome: SearchOutcome, as_json: bool) -> None:
    if as_json:
        rows = [
            {
                "id": h.image["id"],
                "score": h.score,
                "source": h.source,
                "caption": h.image["caption"],
                "tags": h.image["tags"],
                "file": h.image["source_name"],
            }
            for h in outcome.hits
        ]
        console.print_json(json.dumps({"paths": outcome.paths, "results": rows}, ensure_ascii=False))
        return
    table = Table("id", "score", "via", "file", "caption / labels", "tags")
    for h in outcome.hits:
        im = h.image
        labels = ", ".join(str(lab[0]) for lab in (im["auto_labels"] or [])[:3])
        table.add_row(
            str(im["id"]),
            f"{h.score:.3f}",
            h.source,
            escape(im["source_name"] or ""),
            escape(im["caption"]) if im["caption"] else f"[dim]{escape(labels)}[/dim]",
            escape(", ".join(im["tags"])),
        )
    console.print(table)
    console.print(f"[dim]paths: {outcome.paths}[/dim]")


def _filters(tag: list[str] | None, since: datetime | None = None, until: datetime | None = None) -> Any:
    from hanseek.images.repo import ImageFilters
    from hanseek.images.service import filter_tags, normalize_tags

    # `--tag a,b` as the API's `tag=a,b` (and `--tag a --tag b`): every tag required.
    return ImageFilters(tuple(normalize_tags(filter_tags(tag))), since, until)


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What the images show (Korean or English)")],
    k: KOpt = 10,
    tag: TagOpt = None,
    min_score: Annotated[float | None, typer.Option(help="Drop results below this score")] = None,
    path: PathOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Text → images, through captions/tags, auto labels, or CLIP's text tower."""
    from hanseek.images.service import ImageServiceError

    with _service() as svc:
        try:
            out = svc.search_text(query, k=k, min_score=min_score, filters=_filters(tag), path=path)  # type: ignore[arg-type]
        except ImageServiceError as exc:
            _fail(str(exc))
    _print(out, as_json)


@app.command("similar")
def similar(
    target: Annotated[str, typer.Argument(help="An image id, or the path of an example image")],
    k: KOpt = 10,
    tag: TagOpt = None,
    min_score: Annotated[float | None, typer.Option(help="Drop results below this score")] = None,
    path: PathOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Images that look like a stored image (by id) or like an example file."""
    from hanseek.images.decode import ImageRejected
    from hanseek.images.service import ImageNotFound, ImageServiceError

    with _service() as svc:
        try:
            if target.isdigit():
                out = svc.similar(int(target), k=k, min_score=min_score, filters=_filters(tag), path=path)  # type: ignore[arg-type]
            else:
                data = Path(target).read_bytes()
                out = svc.search_image(data, k=k, min_score=min_score, filters=_filters(tag), path=path)  # type: ignore[arg-type]
        except (ImageRejected, ImageServiceError, ImageNotFound, OSError) as exc:
            _fail(str(exc))
    _print(out, as_json)


@app.command("list")
def list_images(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    tag: TagOpt = None,
    after: Annotated[
        str | None, typer.Option(help="Start below this cursor (printed under the previous page)")
    ] = None,
) -> None:
    """The most recently added images."""
    from hanseek.images.service import ImageServiceError, filter_tags, list_cursor

    with _service() as svc:
        try:
            rows, total = svc.list(limit=limit, tags=filter_tags(tag), after=after)
        except ImageServiceError as exc:
            _fail(str(exc))
    table = Table("id", "added", "file", "size", "caption", "tags")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["created_at"].strftime("%Y-%m-%d %H:%M"),
            escape(r["source_name"] or ""),
            f"{r['width']}×{r['height']}",
            escape(r["caption"] or ""),
            escape(", ".join(r["tags"])),
        )
    console.print(table)
    console.print(f"{len(rows)} of {total} image(s)")
    if len(rows) == limit:
        console.print(f"next page: --after {list_cursor(rows[-1])}", soft_wrap=True)


@app.command("remove")
def remove(image_ids: Annotated[list[int], typer.Argument(help="Image ids")]) -> None:
    """Delete images (rows, vectors and files)."""
    from hanseek.images.service import ImageNotFound

    missing = 0
    with _service() as svc:
        for i in image_ids:
            try:
                svc.delete(i)
                console.print(f"removed {i}")
            except ImageNotFound as exc:
                missing += 1
                err_console.print(f"[yellow]{escape(str(exc))}[/yellow]")
    if missing:
        raise typer.Exit(1)


@app.command("reindex")
def reindex() -> None:
    """Encode stored images that have no vector for the current image model (after changing it)."""
    with _service() as svc, progress() as bar:
        task = bar.add_task(f"encoding with {svc.encoder.name}", total=None, info="")
        n = svc.reindex(
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            on_skip=lambda image_id, why: err_console.print(
                f"[yellow]image {image_id} skipped: {escape(str(why))}[/yellow]"
            ),
        )
    console.print(f"{n} image(s) encoded into {svc.image_space.name}")


@app.command("gc")
def gc(
    min_age: Annotated[
        float, typer.Option(min=1.0, help="Minutes a file must be old (an add writes its files first)")
    ] = 15.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed")] = False,
) -> None:
    """Remove media files that no image row names (left by a process killed mid add or delete)."""
    with _service() as svc:
        removed = svc.sweep_orphans(min_age_s=min_age * 60.0, dry_run=dry_run)
    for path in removed:
        err_console.print(f"[dim]{'would remove' if dry_run else 'removed'} {escape(str(path))}[/dim]")
    verb = "would be removed" if dry_run else "removed"
    console.print(f"{len(removed)} orphan media file(s) {verb}")


@app.command("eval")
def evaluate(
    data: Annotated[Path, typer.Option(help="Folder with captions.csv and the photos")] = Path(
        "../shared/data/images"
    ),
    out: Annotated[Path, typer.Option(help="Where images-eval.json/.md are written")] = Path("docs/reports"),
    descriptor: Annotated[bool, typer.Option(help="Also evaluate the hand-made descriptor baseline")] = True,
) -> None:
    """Text→image recall@1/5 and image→image robustness on a captioned photo set."""
    from hanseek.encoders.image_base import ImageEncoder
    from hanseek.encoders.image_descriptor import DescriptorEncoder
    from hanseek.encoders.image_registry import load_image_encoder
    from hanseek.encoders.registry import load_text_encoder
    from hanseek.images import evaluation
    from hanseek.images.config import ImageSettings

    if not (data / "captions.csv").is_file():
        _fail(f"{data}/captions.csv not found")
    try:
        evaluation.check_columns(data)  # before minutes of model loading
    except evaluation.EvalDataError as exc:
        _fail(str(exc))
    report_files(out / "images-eval.json", out / "images-eval.md")  # a valid data set only: no stray folder
    cfg = ImageSettings()
    s = settings()
    encoders: list[ImageEncoder] = [load_image_encoder(cfg.model, text_tower=cfg.text_tower)]
    if descriptor and encoders[0].name != DescriptorEncoder.name:
        encoders.append(DescriptorEncoder())
    with console.status("evaluating…") as status:
        try:
            report = evaluation.run(
                data,
                load_text_encoder(s),
                encoders,
                label_top_k=cfg.label_top_k,
                label_min_prob=cfg.label_min_prob,
                near_duplicate_score=cfg.near_duplicate_score,
                progress=lambda msg: status.update(msg),
            )
        except evaluation.EvalDataError as exc:
            _fail(str(exc))
    command = f"hanseek images eval --data {data} --out {out}" + ("" if descriptor else " --no-descriptor")
    report["command"] = command
    write_text_atomic(out / "images-eval.json", json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    write_text_atomic(out / "images-eval.md", evaluation.markdown(report, command))
    t2i = report["text_to_image"]
    console.print(
        f"text→image (class names only) R@1 en {t2i['labels']['en']['recall@1']:.2f} "
        f"ko {t2i['labels']['ko']['recall@1']:.2f}; R@5 en {t2i['labels']['en']['recall@5']:.2f} "
        f"ko {t2i['labels']['ko']['recall@5']:.2f}"
    )
    for res in report["image_to_image"]:
        console.print(f"image→image {res['encoder']}: rank-1 rate {res['overall']['recall@1']:.3f}")
    console.print(
        f"written {escape(str(out / 'images-eval.json'))} and {escape(str(out / 'images-eval.md'))}"
    )
