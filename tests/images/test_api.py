"""The /images API over HTTP (TestClient) on the real database and models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr

from hanseek.api.app import create_app
from hanseek.api.state import AppState
from hanseek.images.service import ImageService
from hanseek.images.transforms import STANDARD
from tests.fixtures.api import contract_client
from tests.images.conftest import encode_jpeg, encode_png, unique_png


@pytest.fixture(scope="module")
def api(
    app_state: AppState, client: TestClient, image_service: ImageService, text_encoder: Any
) -> TestClient:
    # Share the session's models instead of loading a second copy inside the app.
    app_state.service("text_encoder", lambda st: text_encoder)
    app_state.service("images", lambda st: image_service)
    return client


@pytest.fixture(scope="module")
def uploaded(api: TestClient, sample_images: dict[str, Image.Image]) -> dict[str, Any]:
    files = [
        ("files", ("china.png", unique_png(sample_images["china"]), "image/png")),
        ("files", ("hopper.png", unique_png(sample_images["hopper"]), "image/png")),
        ("files", ("notes.txt", b"definitely not an image", "text/plain")),
    ]
    data = {
        "caption": ["오래된 절의 기와 지붕", "a portrait of a navy officer"],
        "tags": ["api-test, temple", "api-test"],
    }
    r = api.post("/images", files=files, data=data)
    assert r.status_code == 201, r.text
    return r.json()


def test_upload_batch_reports_each_file(uploaded: dict[str, Any]) -> None:
    assert (uploaded["added"], uploaded["duplicates"], uploaded["rejected"]) == (2, 0, 1)
    statuses = [(r["filename"], r["status"], r["reason"]) for r in uploaded["results"]]
    assert statuses == [
        ("china.png", "added", None),
        ("hopper.png", "added", None),
        ("notes.txt", "rejected", "not_an_image"),
    ]
    assert "not an image" in uploaded["results"][2]["message"]


def test_get_image_thumbnail_and_file(api: TestClient, uploaded: dict[str, Any]) -> None:
    image_id = uploaded["results"][0]["id"]
    r = api.get(f"/images/{image_id}")
    assert r.status_code == 200
    body = r.json()
    assert body["caption"] == "오래된 절의 기와 지붕" and body["tags"] == ["api-test", "temple"]
    assert (body["width"], body["height"], body["format"]) == (640, 427, "PNG")
    assert body["auto_labels"] and {"label", "probability"} <= set(body["auto_labels"][0])
    thumb = api.get(body["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    original = api.get(body["file_url"])
    assert original.headers["content-type"] == "image/png"
    assert original.headers["x-content-type-options"] == "nosniff"
    from hashlib import sha256

    assert sha256(original.content).hexdigest() == body["sha256"]


def test_all_rejected_is_a_422_problem(api: TestClient) -> None:
    r = api.post("/images", files=[("files", ("x.jpg", b"\xff\xd8\xff\xe0 broken", "image/jpeg"))])
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["rejected"] == 1 and body["results"][0]["reason"] in {"corrupt", "not_an_image"}
    assert body["detail"]


def test_bomb_upload_is_a_422(api: TestClient) -> None:
    bomb = encode_png(Image.new("L", (3000, 3000), 0))
    r = api.post("/images", files=[("files", ("bomb.png", bomb, "image/png"))])
    assert r.status_code == 422 and r.json()["results"][0]["reason"] == "too_many_pixels"
    r = api.post("/images/search", files={"file": ("bomb.png", bomb, "image/png")})
    assert r.status_code == 422 and r.json()["reason"] == "too_many_pixels"


def test_duplicate_upload(
    api: TestClient, uploaded: dict[str, Any], sample_images: dict[str, Image.Image]
) -> None:
    data = unique_png(sample_images["flower"])
    first = api.post("/images", files=[("files", ("f.png", data, "image/png"))]).json()["results"][0]
    r = api.post("/images", files=[("files", ("g.png", data, "image/png"))])
    assert r.status_code == 200  # nothing added, nothing wrong
    again = r.json()["results"][0]
    assert (again["status"], again["id"], again["reason"]) == ("duplicate", first["id"], "already_stored")


def test_text_search(api: TestClient, uploaded: dict[str, Any]) -> None:
    r = api.get("/images/search", params={"q": "해군 장교", "tag": "api-test", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results"][0]["image"]["id"] == uploaded["results"][1]["id"]
    assert body["results"][0]["source"] in {"caption", "labels"}
    assert set(body["paths"]) == {"caption:e5-small", "labels:e5-small"}
    only = api.get("/images/search", params={"q": "temple", "tag": ["api-test", "temple"]}).json()
    assert [h["image"]["id"] for h in only["results"]] == [uploaded["results"][0]["id"]]
    hnsw = api.get(
        "/images/search", params={"q": "해군 장교", "tag": "api-test", "path": "hnsw", "source": "caption"}
    )
    assert hnsw.json()["paths"] == {"caption:e5-small": "hnsw"}


def test_search_by_upload_finds_the_original(
    api: TestClient, uploaded: dict[str, Any], sample_images: dict[str, Image.Image]
) -> None:
    query = encode_jpeg(STANDARD["crop_centre_80"](sample_images["hopper"]), 70)
    r = api.post(
        "/images/search", params={"k": 3, "tag": "api-test"}, files={"file": ("q.jpg", query, "image/jpeg")}
    )
    assert r.status_code == 200, r.text
    top = r.json()["results"][0]
    assert top["image"]["id"] == uploaded["results"][1]["id"] and top["source"] == "image"
    assert top["score"] > 0.7


def test_similar_and_threshold(api: TestClient, uploaded: dict[str, Any]) -> None:
    china, hopper = uploaded["results"][0]["id"], uploaded["results"][1]["id"]
    r = api.get(f"/images/{china}/similar", params={"tag": "api-test", "k": 10})
    ids = [h["image"]["id"] for h in r.json()["results"]]
    assert china not in ids and hopper in ids
    r = api.get(f"/images/{china}/similar", params={"tag": "api-test", "min_score": 0.999})
    assert r.json()["count"] == 0


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status"),
    [
        ("get", "/images/999999999", {}, 404),
        ("get", "/images/999999999/similar", {}, 404),
        ("get", "/images/999999999/thumbnail", {}, 404),
        ("get", "/images/not-a-number", {}, 422),
        ("get", "/images/search", {"params": {"q": ""}}, 422),
        ("get", "/images/search", {"params": {"q": "\x00\u200b\x07 "}}, 422),  # was a 200 until session 18
        ("get", "/images/search", {"params": {"q": "cat", "k": 0}}, 422),
        ("get", "/images/search", {"params": {"q": "cat", "k": 100000}}, 422),
        ("get", "/images/search", {"params": {"q": "cat", "path": "magic"}}, 422),
        ("get", "/images/search", {"params": {"q": "cat", "from": "yesterday"}}, 422),
        ("get", "/images/search", {"params": {"q": "cat", "tag": "x" * 100}}, 422),
        ("get", "/images/search", {"params": {"q": "x" * 2000}}, 422),  # the search's own 1,000 cap
        ("post", "/images/search", {}, 422),
        ("post", "/images/search", {"files": {"file": ("a.txt", b"hello", "text/plain")}}, 422),
        ("post", "/images", {}, 422),
        ("delete", "/images/999999999", {}, 404),
    ],
)
def test_bad_requests_are_problems(
    api: TestClient, method: str, url: str, kwargs: dict[str, Any], status: int
) -> None:
    r = getattr(api, method)(url, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"]


def _client_with(
    app_state: AppState, image_service: ImageService, text_encoder: Any, **overrides: Any
) -> Iterator[TestClient]:
    """A client of an app whose settings differ from the session's by `overrides`."""
    settings = app_state.settings.model_copy(update=overrides)
    state = AppState(settings, app_state.db)
    state.ready = True
    state.service("text_encoder", lambda st: text_encoder)
    state.service("images", lambda st: image_service)
    with contract_client(create_app(settings, state=state), settings) as c:
        yield c


@pytest.fixture()
def keyed(app_state: AppState, image_service: ImageService, text_encoder: Any) -> Iterator[TestClient]:
    yield from _client_with(app_state, image_service, text_encoder, api_key=SecretStr("s3cret"))


def test_writes_need_the_api_key(keyed: TestClient, sample_images: dict[str, Image.Image]) -> None:
    files = [("files", ("k.png", unique_png(sample_images["flower"]), "image/png"))]
    assert keyed.post("/images", files=files).status_code == 401
    r = keyed.post("/images", files=files, headers={"X-API-Key": "s3cret"})
    assert r.status_code == 201
    image_id = r.json()["results"][0]["id"]
    assert keyed.get(f"/images/{image_id}").status_code == 200  # reads stay open
    assert keyed.delete(f"/images/{image_id}").status_code == 401
    assert keyed.delete(f"/images/{image_id}", headers={"Authorization": "Bearer s3cret"}).status_code == 204
    assert keyed.get(f"/images/{image_id}").status_code == 404


@pytest.fixture()
def small_limits(app_state: AppState, image_service: ImageService, text_encoder: Any) -> Iterator[TestClient]:
    yield from _client_with(app_state, image_service, text_encoder, max_text_chars=50)


def test_search_query_length_is_the_text_limit(small_limits: TestClient) -> None:
    """`q` was capped by a fixed 1,000 characters (a 422) that HANSEEK_MAX_TEXT_CHARS did not move."""
    assert small_limits.get("/images/search", params={"q": "기와 지붕" * 10}).status_code == 200
    r = small_limits.get("/images/search", params={"q": "기와 지붕" * 10 + "!"})
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == "q has 51 characters; the limit is 50"


def test_page_renders(api: TestClient) -> None:
    r = api.get("/images")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert 'id="text-search"' in r.text and "/static/images.js" in r.text
    assert api.get("/static/images.js").status_code == 200


def _stored_bytes(image_service: ImageService, image_id: int, variant: str) -> bytes:
    path, _ = image_service.file(image_id, variant)  # type: ignore[arg-type]
    return path.read_bytes()


@pytest.mark.parametrize("variant", ["file", "thumbnail"])
def test_a_delete_right_after_the_lookup_still_sends_the_whole_file(
    api: TestClient,
    image_service: ImageService,
    sample_images: dict[str, Image.Image],
    monkeypatch: pytest.MonkeyPatch,
    variant: str,
) -> None:
    """A DELETE that unlinks the files after the GET's handler found them, before the response was
    sent. Until session 17 the handler returned only the path (Starlette's FileResponse stats and
    opens it when sending): a 500. Now the open file is sent, whole, with the usual headers."""
    from hanseek.api.routers import images as router

    r = api.post("/images", files=[("files", ("race.png", unique_png(sample_images["flower"]), "image/png"))])
    image_id = r.json()["results"][0]["id"]
    expected = _stored_bytes(image_service, image_id, "original" if variant == "file" else "thumbnail")
    real = router._service_call

    def then_deleted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        out = real(fn, *args, **kwargs)
        image_service.delete(image_id)  # a DELETE finishing in another worker thread, right now
        return out

    monkeypatch.setattr(router, "_service_call", then_deleted)
    r = api.get(f"/images/{image_id}/{variant}")
    monkeypatch.undo()
    assert r.status_code == 200 and r.content == expected
    assert r.headers["content-type"] == ("image/png" if variant == "file" else "image/webp")
    assert r.headers["content-length"] == str(len(expected))
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["etag"].startswith('"') and r.headers["last-modified"].endswith("GMT")
    assert api.get(f"/images/{image_id}/{variant}").status_code == 404  # gone now, like an unknown id


def test_a_delete_while_the_response_starts_does_not_cut_the_body_short(
    api: TestClient, image_service: ImageService, sample_images: dict[str, Image.Image]
) -> None:
    """The DELETE lands once the status and headers are out (Content-Length says the whole size).
    Until session 17 the file was opened only then: the body never came (a client saw the connection
    close early). The file opened in the handler stays readable after it is unlinked."""
    r = api.post("/images", files=[("files", ("cut.png", unique_png(sample_images["china"]), "image/png"))])
    image_id = r.json()["results"][0]["id"]
    expected = _stored_bytes(image_service, image_id, "original")
    inner = api.app

    async def delete_when_headers_go(scope: Any, receive: Any, send: Any) -> None:
        async def send_then_delete(message: Any) -> None:
            if message["type"] == "http.response.start" and scope["path"].endswith("/file"):
                image_service.delete(image_id)
            await send(message)

        await inner(scope, receive, send_then_delete)

    r = TestClient(delete_when_headers_go, base_url="http://localhost").get(f"/images/{image_id}/file")
    assert r.status_code == 200 and r.content == expected
    assert r.headers["content-length"] == str(len(expected))
    assert not image_service.media.original_path(_sha(expected), "png").exists()  # it did go


def _sha(data: bytes) -> str:
    from hashlib import sha256

    return sha256(data).hexdigest()


def test_list_pages_by_cursor_skip_nothing_when_images_are_deleted_between_pages(
    api: TestClient, sample_images: dict[str, Image.Image]
) -> None:
    """With `offset`, a delete above the next page moved it up by one: an image was never listed."""
    tag = f"pages-{uuid.uuid4().hex[:8]}"
    files = [("files", (f"p{i}.png", unique_png(sample_images["flower"]), "image/png")) for i in range(5)]
    r = api.post("/images", files=files, data={"tags": [tag] * 5})  # one batch: one created_at
    assert r.status_code == 201, r.text
    newest_first = sorted((x["id"] for x in r.json()["results"]), reverse=True)

    first = api.get("/images/list", params={"tag": tag, "limit": 2}).json()
    assert [x["id"] for x in first["results"]] == newest_first[:2] and first["total"] == 5
    assert api.delete(f"/images/{newest_first[1]}").status_code == 204
    second = api.get("/images/list", params={"tag": tag, "limit": 2, "after": first["next_after"]}).json()
    assert [x["id"] for x in second["results"]] == newest_first[2:4] and second["total"] == 4
    last = api.get("/images/list", params={"tag": tag, "limit": 2, "after": second["next_after"]}).json()
    assert [x["id"] for x in last["results"]] == newest_first[4:] and last["next_after"] is None
    # `offset` still counts from the cursor (and from the top without one).
    skipped = api.get(
        "/images/list", params={"tag": tag, "limit": 5, "after": first["next_after"], "offset": 1}
    )
    assert [x["id"] for x in skipped.json()["results"]] == newest_first[3:]

    for bad in ["yesterday", "2026-11-25T00:00:00Z~x", "~3", "2026-13-01~3"]:
        r = api.get("/images/list", params={"after": bad})
        assert r.status_code == 422 and "not a list cursor" in r.json()["detail"], (bad, r.text)


def test_image_files_answer_ranges_and_revalidation(api: TestClient, uploaded: dict[str, Any]) -> None:
    """Until session 18 a Range was ignored (a whole 200) and an If-None-Match was sent the file again."""
    url = f"/images/{uploaded['results'][0]['id']}/file"
    whole = api.get(url)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    data, etag, size = whole.content, whole.headers["etag"], len(whole.content)

    part = api.get(url, headers={"Range": "bytes=10-29"})
    assert part.status_code == 206 and part.content == data[10:30]
    assert part.headers["content-range"] == f"bytes 10-29/{size}" and part.headers["content-length"] == "20"
    tail = api.get(url, headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == data[-7:]
    assert api.get(url, headers={"Range": "bytes=0-1,5-6"}).content == data  # several: the whole file
    stale = api.get(url, headers={"Range": "bytes=0-9", "If-Range": '"another-version"'})
    assert stale.status_code == 200 and stale.content == data
    fresh = api.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206 and fresh.content == data[:10]
    past = api.get(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    assert past.headers["content-type"].startswith("application/problem+json") and "past its end" in past.text

    head = api.head(url)
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(size)
    assert api.get(url, headers={"If-Modified-Since": whole.headers["last-modified"]}).status_code == 304
    old_date = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert api.get(url, headers={"If-Modified-Since": old_date}).status_code == 200
    # If-None-Match decides when both are sent (RFC 9110 §13.1.3).
    both = {"If-None-Match": '"other"', "If-Modified-Since": whole.headers["last-modified"]}
    assert api.get(url, headers=both).status_code == 200
    cached = api.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == etag
    assert api.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    thumb = f"/images/{uploaded['results'][0]['id']}/thumbnail"
    t = api.get(thumb, headers={"Range": "bytes=0-3"})
    assert t.status_code == 206 and t.content == b"RIFF"  # WebP


def test_a_tag_added_as_hash_tag_is_found_with_or_without_its_hash(
    api: TestClient, sample_images: dict[str, Image.Image]
) -> None:
    """Tags typed as cards show them ("#sky") were stored with the "#": shown "##sky", never found."""
    tag = f"hash-{uuid.uuid4().hex[:8]}"
    files = [("files", ("sky.png", unique_png(sample_images["flower"]), "image/png"))]
    r = api.post("/images", files=files, data={"tags": f"#{tag}, ##Other-{tag}"})
    assert r.status_code == 201, r.text
    image_id = r.json()["results"][0]["id"]
    assert api.get(f"/images/{image_id}").json()["tags"] == [tag, f"other-{tag}"]
    for wanted in [tag, f"#{tag}"]:
        listed = api.get("/images/list", params={"tag": wanted}).json()
        assert [x["id"] for x in listed["results"]] == [image_id], wanted
