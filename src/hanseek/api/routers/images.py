"""Image collection API and the /images page: ingest, text→image, image→image, retrieval."""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.utils import formatdate
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from hanseek.api.errors import BadRequest, NotFound, ProblemError, TooLarge, problem
from hanseek.api.openapi import problem_response, problems
from hanseek.api.ranges import ByteRange, Unsatisfiable, etag_matches, not_modified_since, requested_range
from hanseek.api.security import require_read_key, require_write_key
from hanseek.api.state import get_state
from hanseek.images.decode import ImageRejected
from hanseek.images.repo import ImageFilters
from hanseek.images.service import (
    MAX_K,
    MAX_QUERY_CHARS,
    AddResult,
    ImageNotFound,
    ImageService,
    ImageServiceError,
    OpenFile,
    SearchOutcome,
    Upload,
    filter_tags,
    list_cursor,
    split_tags,
)
from hanseek.web.pages import render

router = APIRouter(tags=["images"])
PathChoice = Literal["auto", "exact", "hnsw"]


# -- models ------------------------------------------------------------------------------------
class Label(BaseModel):
    label: str
    probability: float


class ImageOut(BaseModel):
    id: int
    sha256: str
    format: str
    mime: str
    width: int
    height: int
    bytes: int
    source_name: str | None
    caption: str | None
    tags: list[str]
    auto_labels: list[Label] = Field(description="What the image model sees (ImageNet classes)")
    created_at: datetime
    thumbnail_url: str
    file_url: str
    similar_url: str


class AddItemOut(BaseModel):
    index: int = Field(description="Position of the file in the request")
    filename: str | None
    status: Literal["added", "duplicate", "rejected"]
    id: int | None = None
    sha256: str | None = None
    reason: str | None = Field(None, description="Machine-readable reason for duplicate/rejected")
    message: str | None = None
    near_duplicate_of: int | None = Field(None, description="A stored image that looks the same")
    near_duplicate_score: float | None = None


class AddOut(BaseModel):
    added: int
    duplicates: int
    rejected: int
    results: list[AddItemOut]


class HitOut(BaseModel):
    score: float = Field(description="Cosine similarity in the space that matched")
    source: str = Field(description="image | caption | labels | clip")
    image: ImageOut


class SearchOut(BaseModel):
    count: int
    paths: dict[str, str] = Field(description="Vector space -> exact | hnsw")
    results: list[HitOut]


class ListOut(BaseModel):
    total: int
    results: list[ImageOut]
    next_after: str | None = Field(
        description="Pass as `after` for the next page; null when this page was the last"
    )


# -- helpers -----------------------------------------------------------------------------------
def _service(request: Request) -> ImageService:
    from hanseek.encoders.base import EncoderError

    try:
        return get_state(request).service("images", ImageService.from_state)
    except EncoderError as exc:
        raise ProblemError(503, "Model unavailable", str(exc)) from exc


def image_out(row: dict[str, Any]) -> ImageOut:
    i = int(row["id"])
    return ImageOut(
        id=i,
        sha256=row["sha256"],
        format=row["format"],
        mime=row["mime"],
        width=row["width"],
        height=row["height"],
        bytes=row["bytes"],
        source_name=row["source_name"],
        caption=row["caption"],
        tags=list(row["tags"] or []),
        auto_labels=[Label(label=str(lab), probability=float(p)) for lab, p in (row["auto_labels"] or [])],
        created_at=row["created_at"],
        thumbnail_url=f"/images/{i}/thumbnail",
        file_url=f"/images/{i}/file",
        similar_url=f"/images/{i}/similar",
    )


def _search_out(outcome: SearchOutcome) -> SearchOut:
    return SearchOut(
        count=len(outcome.hits),
        paths=outcome.paths,
        results=[HitOut(score=h.score, source=h.source, image=image_out(h.image)) for h in outcome.hits],
    )


def _filters(
    tags: list[str] | None, created_from: datetime | None, created_to: datetime | None
) -> ImageFilters:
    from hanseek.images.service import normalize_tags

    try:
        return ImageFilters(tuple(normalize_tags(filter_tags(tags))), created_from, created_to)
    except ImageServiceError as exc:
        raise BadRequest(str(exc)) from exc


class SearchParams:
    """Query parameters shared by the search endpoints."""

    def __init__(
        self,
        k: Annotated[int, Query(ge=1, le=MAX_K, description="Number of results")] = 20,
        min_score: Annotated[float | None, Query(ge=-1.0, le=1.0, description="Drop results below")] = None,
        tag: Annotated[list[str] | None, Query(description="Only images with all these tags")] = None,
        created_from: Annotated[datetime | None, Query(alias="from", description="Added at or after")] = None,
        created_to: Annotated[datetime | None, Query(alias="to", description="Added before")] = None,
        path: Annotated[PathChoice, Query(description="auto | exact | hnsw")] = "auto",
    ) -> None:
        self.k = k
        self.min_score = min_score
        self.filters = _filters(tag, created_from, created_to)
        self.path: PathChoice = path


def _read(upload: UploadFile) -> bytes:
    return upload.file.read()


def _service_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from hanseek.encoders.base import EncoderError

    try:
        return fn(*args, **kwargs)
    except EncoderError as exc:  # the text encoder is loaded on first use
        raise ProblemError(503, "Model unavailable", str(exc)) from exc
    except ImageRejected as exc:
        raise ProblemError(422, "Invalid image", exc.message, reason=exc.reason) from exc
    except ImageServiceError as exc:
        raise BadRequest(str(exc)) from exc
    except ImageNotFound as exc:
        raise NotFound(str(exc)) from exc


# -- page --------------------------------------------------------------------------------------
@router.get("/images", response_class=HTMLResponse, include_in_schema=False)
def images_page(request: Request) -> HTMLResponse:
    return render(request, "images.html")


# -- ingest ------------------------------------------------------------------------------------
@router.post(
    "/images",
    response_model=AddOut,
    dependencies=[Depends(require_write_key)],
    summary="Add images (multipart, several files at once)",
    response_description="Every file was already stored (duplicates; nothing added)",
    responses={
        201: {"model": AddOut, "description": "At least one file was added (per-file results)"},
        **problems(503),
        422: problem_response(
            422,
            "Invalid input, or every file was rejected (then the problem document has `results`, per file)",
        ),
    },
)
def add_images(
    request: Request,
    files: Annotated[list[UploadFile], File(description="Image files (JPEG, PNG, WebP, GIF, BMP, TIFF)")],
    caption: Annotated[
        list[str] | None, Form(description="Captions, in file order; one caption alone applies to all files")
    ] = None,
    tags: Annotated[
        list[str] | None,
        Form(
            description="Comma-separated tags per file, in file order; one value alone applies to all. "
            "Tags are stored in lower case without a leading `#`"
        ),
    ] = None,
) -> Any:
    """Store images with optional captions and tags; each file gets its own result (added, duplicate or
    rejected with a reason). 201 when any was added, 200 when all were already stored, 422 when every
    file was rejected."""
    svc = _service(request)
    if len(files) > svc.config.max_batch_files:
        raise TooLarge(f"{len(files)} files; at most {svc.config.max_batch_files} per request")
    captions, tag_lists = _per_file(caption, len(files), "caption"), _per_file(tags, len(files), "tags")
    uploads = [
        Upload(_read(f), f.filename, captions[i] or None, split_tags(tag_lists[i]))
        for i, f in enumerate(files)
    ]
    results = _service_call(svc.add, uploads)
    out = _add_out(results)
    if out.rejected == len(results):
        body = out.model_dump(mode="json")
        first = next((r.message for r in out.results if r.message), "no image could be stored")
        detail = first if len(results) == 1 else f"All {len(results)} files were rejected; first: {first}"
        return problem(422, "Invalid image", detail, **body)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if out.added else 200)


def _per_file(values: list[str] | None, n: int, name: str) -> list[str]:
    values = values or []
    if len(values) == 1:
        return values * n
    if len(values) > n:
        raise BadRequest(f"{len(values)} {name} values for {n} files")
    return values + [""] * (n - len(values))


def _add_out(results: list[AddResult]) -> AddOut:
    items = [
        AddItemOut(
            index=r.index,
            filename=r.filename,
            status=r.status,
            id=r.id,
            sha256=r.sha256,
            reason=r.reason,
            message=r.message,
            near_duplicate_of=r.near_duplicate_of,
            near_duplicate_score=r.near_duplicate_score,
        )
        for r in results
    ]
    return AddOut(
        added=sum(r.status == "added" for r in results),
        duplicates=sum(r.status == "duplicate" for r in results),
        rejected=sum(r.status == "rejected" for r in results),
        results=items,
    )


# -- search ------------------------------------------------------------------------------------
def _check_query_length(q: str, limit: int) -> None:
    """`q` against `HANSEEK_MAX_TEXT_CHARS`, the limit (and 413) of every other text, rather than a
    number of the route's own that the setting did not move. The service still caps what a query
    may mean (MAX_QUERY_CHARS once trimmed and in NFC, a 422)."""
    if len(q) > limit:
        raise TooLarge(f"q has {len(q):,} characters; the limit is {limit:,}")


@router.get(
    "/images/search",
    response_model=SearchOut,
    dependencies=[Depends(require_read_key)],
    summary="Text → images (Korean or English)",
    responses={**problems(503), 413: problem_response(413, "`q` is longer than `HANSEEK_MAX_TEXT_CHARS`.")},
)
def search_text(
    request: Request,
    q: Annotated[
        str,
        Query(
            min_length=1,
            description=f"What the images show: at most `HANSEEK_MAX_TEXT_CHARS` characters (413) "
            f"and {MAX_QUERY_CHARS:,} once trimmed and in NFC (422)",
        ),
    ],
    params: Annotated[SearchParams, Depends()],
    source: Annotated[
        list[Literal["caption", "labels", "clip"]] | None,
        Query(description="Spaces to search (default: all)"),
    ] = None,
) -> SearchOut:
    """Images for a Korean or English description, from the caption, label and (when a CLIP model is
    installed) image-text spaces."""
    _check_query_length(q, get_state(request).settings.max_text_chars)
    svc = _service(request)
    outcome = _service_call(
        svc.search_text,
        q,
        k=params.k,
        min_score=params.min_score,
        filters=params.filters,
        path=params.path,
        sources=source,
    )
    return _search_out(outcome)


@router.post(
    "/images/search",
    response_model=SearchOut,
    dependencies=[Depends(require_read_key)],
    summary="Image → similar images (upload an image)",
    responses=problems(503),
)
def search_image(
    request: Request,
    file: Annotated[UploadFile, File(description="The example image")],
    params: Annotated[SearchParams, Depends()],
) -> SearchOut:
    """Images that look like the uploaded one; the upload is not stored."""
    svc = _service(request)
    outcome = _service_call(
        svc.search_image,
        _read(file),
        k=params.k,
        min_score=params.min_score,
        filters=params.filters,
        path=params.path,
    )
    return _search_out(outcome)


@router.get("/images/list", response_model=ListOut, dependencies=[Depends(require_read_key)])
def list_images(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, description="Rows to skip (after `after`, if given)")] = 0,
    tag: Annotated[list[str] | None, Query(description="Only images with all these tags")] = None,
    after: Annotated[
        str | None,
        Query(
            max_length=200,
            description="The previous page's `next_after`: the page starts below its last image, "
            "so images deleted or added meanwhile neither skip nor repeat one",
        ),
    ] = None,
) -> ListOut:
    """Stored images, newest first, optionally only those with every given tag; `total` counts all matches."""
    svc = _service(request)
    rows, total = _service_call(svc.list, limit=limit, offset=offset, tags=filter_tags(tag), after=after)
    next_after = list_cursor(rows[-1]) if len(rows) == limit else None
    return ListOut(total=total, results=[image_out(r) for r in rows], next_after=next_after)


@router.get(
    "/images/{image_id}",
    response_model=ImageOut,
    dependencies=[Depends(require_read_key)],
    responses=problems(404),
)
def get_image(request: Request, image_id: int) -> ImageOut:
    """One image's metadata."""
    return image_out(_service_call(_service(request).get, image_id))


@router.get(
    "/images/{image_id}/similar",
    response_model=SearchOut,
    dependencies=[Depends(require_read_key)],
    responses=problems(404, 503),
)
def similar_images(request: Request, image_id: int, params: Annotated[SearchParams, Depends()]) -> SearchOut:
    """Images that look like a stored one (itself excluded)."""
    svc = _service(request)
    outcome = _service_call(
        svc.similar,
        image_id,
        k=params.k,
        min_score=params.min_score,
        filters=params.filters,
        path=params.path,
    )
    return _search_out(outcome)


def _file_response(request: Request, image_id: int, variant: Literal["original", "thumbnail"]) -> Response:
    # Opened here and sent from the open file: a FileResponse would stat and open the path only after
    # this returned, and a DELETE finishing in between turned the answer into a 500 or a cut-off 200.
    opened: OpenFile = _service_call(_service(request).open_file, image_id, variant)
    headers = {
        # Content-addressed files never change, so clients may cache them for good.
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
        "Last-Modified": formatdate(opened.mtime, usegmt=True),
        "ETag": _etag(opened),
        "Accept-Ranges": "bytes",
    }
    try:
        inm, ims = request.headers.get("if-none-match"), request.headers.get("if-modified-since")
        if (inm is not None and etag_matches(inm, headers["ETag"])) or (
            inm is None and ims is not None and not_modified_since(ims, opened.mtime)
        ):
            opened.file.close()
            return Response(status_code=304, headers=headers)
        part = _range(request, opened, headers)
    except BaseException:
        opened.file.close()
        raise
    if part is None:
        headers["Content-Length"] = str(opened.size)
        body = opened.chunks()
    else:
        headers["Content-Length"] = str(part.length)
        headers["Content-Range"] = part.content_range(opened.size)
        body = opened.chunks(start=part.start, length=part.length)
    return StreamingResponse(
        body,
        status_code=200 if part is None else 206,
        media_type=opened.mime,
        headers=headers,
        background=BackgroundTask(opened.file.close),
    )


def _range(request: Request, opened: OpenFile, headers: dict[str, str]) -> ByteRange | None:
    """The part a `Range` asks for; None for the whole file, also when an `If-Range` names another
    version (neither its ETag nor its date). A range past the end is a 416 problem."""
    asked = request.headers.get("range")
    if asked is None:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() not in (headers["ETag"], headers["Last-Modified"]):
        return None
    try:
        return requested_range(asked, opened.size)
    except Unsatisfiable:
        raise ProblemError(
            416,
            "Range Not Satisfiable",
            f"the file has {opened.size:,} bytes; the range {asked[:100]!r} starts past its end",
            headers={"Content-Range": f"bytes */{opened.size}"},
        ) from None


_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    206: {"description": "The byte range a `Range` header asked for (`Content-Range` names it)."},
    304: {
        "description": "`If-None-Match` named this file's ETag (or, without it, `If-Modified-Since` is "
        "not before the file's time): the cached copy is current."
    },
    **problems(404),
    416: problem_response(416, "The `Range` starts at or past the end of the file."),
}


def _etag(opened: OpenFile) -> str:
    # The ETag Starlette's FileResponse gave these files (size and mtime), so cached copies stay valid.
    base = f"{opened.mtime}-{opened.size}"
    return f'"{hashlib.md5(base.encode(), usedforsecurity=False).hexdigest()}"'


@router.get(
    "/images/{image_id}/thumbnail",
    dependencies=[Depends(require_read_key)],
    response_class=Response,
    responses=_FILE_RESPONSES,
)
def image_thumbnail(request: Request, image_id: int) -> Response:
    """The image's thumbnail (WebP); cacheable for good, the files are content-addressed."""
    return _file_response(request, image_id, "thumbnail")


@router.get(
    "/images/{image_id}/file",
    dependencies=[Depends(require_read_key)],
    response_class=Response,
    responses=_FILE_RESPONSES,
)
def image_file(request: Request, image_id: int) -> Response:
    """The image as uploaded; cacheable for good, the files are content-addressed."""
    return _file_response(request, image_id, "original")


@router.delete(
    "/images/{image_id}", status_code=204, dependencies=[Depends(require_write_key)], responses=problems(404)
)
def delete_image(request: Request, image_id: int) -> Response:
    """Delete an image with its vectors and files."""
    _service_call(_service(request).delete, image_id)
    return Response(status_code=204)
