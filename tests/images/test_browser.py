"""The /images page in headless Chromium against the live app: upload an example, see results."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from hanseek.api.state import AppState
from hanseek.images.service import ImageService, Upload
from hanseek.images.transforms import STANDARD
from tests.fixtures.api import type_key
from tests.images.conftest import encode_jpeg, unique_png

pytestmark = pytest.mark.browser


@pytest.fixture()
def collection(
    app_state: AppState,
    image_service: ImageService,
    text_encoder: Any,
    sample_images: dict[str, Image.Image],
    tag: str,
) -> dict[str, int]:
    app_state.service("text_encoder", lambda st: text_encoder)
    app_state.service("images", lambda st: image_service)
    names = sorted(sample_images)
    captions = {
        "china": "기와 지붕이 있는 오래된 절",
        "flower": "분홍색 꽃",
        "hopper": "제복을 입은 해군 장교",
    }
    res = image_service.add(
        [Upload(unique_png(sample_images[n]), f"{n}.png", captions[n], [tag]) for n in names]
    )
    return {n: r.id for n, r in zip(names, res, strict=True)}  # type: ignore[misc]


def test_upload_an_example_and_find_similar(
    live_server: str,
    page: Any,
    collection: dict[str, int],
    sample_images: dict[str, Image.Image],
    tag: str,
    tmp_path: Path,
) -> None:
    example = tmp_path / "example.jpg"
    example.write_bytes(encode_jpeg(STANDARD["crop_centre_80"](sample_images["flower"]), 75))
    page.goto(live_server + "/images?q=%EA%BD%83")  # a text search from a link, then an example
    page.locator("#status:has-text('best matches')").wait_for()
    page.fill("#tag-filter", tag)
    page.set_input_files("#example", str(example))
    page.wait_for_function("document.getElementById('status').textContent.includes('example.jpg')")
    cards = page.locator(".img-card")
    assert cards.count() == 3
    assert "q=" not in page.url  # a reload must not bring back the text search that is gone
    assert cards.first.get_attribute("data-image-id") == str(collection["flower"])
    scores = [float(s) for s in page.locator(".img-score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.7
    assert (
        page.locator("#status").inner_text()
        == f"The 3 best matches for “example.jpg” among the images tagged #{tag}."
    )
    assert page.locator("#example-preview").is_visible()

    # "Find similar" on the second result re-runs the search from that image (which is excluded).
    second = cards.nth(1).get_attribute("data-image-id")
    cards.nth(1).locator(".img-similar").focus()
    page.keyboard.press("Enter")
    page.wait_for_function(
        "id => ![...document.querySelectorAll('.img-card')].some(c => c.dataset.imageId === id)", arg=second
    )
    assert page.locator(".img-card").count() == 2
    # The button went with its card: the keyboard's focus is on the status line, not lost to the page.
    assert page.evaluate("document.activeElement.id") == "status"
    assert page.locator("#status").inner_text().startswith("The 2 best matches for ")
    assert page.locator("#example-preview").is_hidden()  # the example's search is gone
    # The URL holds the image asked about: a reload comes back to the same search.
    assert f"similar={second}" in page.url and f"tag={tag}" in page.url
    page.reload()
    page.wait_for_function("document.querySelectorAll('.img-card').length === 2")
    assert second not in [c.get_attribute("data-image-id") for c in page.locator(".img-card").all()]
    assert page.input_value("#tag-filter") == tag

    # A thumbnail actually loads.
    assert page.locator(".img-card img").first.evaluate("img => img.complete && img.naturalWidth > 0")


def test_text_search_in_korean(live_server: str, page: Any, collection: dict[str, int], tag: str) -> None:
    page.goto(live_server + "/images")
    page.fill("#tag-filter", tag)
    page.fill("#q", "해군 장교")
    page.click("#text-search button")
    page.locator(".img-card").first.wait_for()
    assert page.locator(".img-card").first.get_attribute("data-image-id") == str(collection["hopper"])
    # The search lives in the URL: a reload runs it again.
    assert "q=" in page.url and f"tag={tag}" in page.url
    page.reload()
    page.locator(".img-card").first.wait_for()
    assert page.input_value("#q") == "해군 장교" and page.input_value("#tag-filter") == tag
    assert page.locator(".img-card").first.get_attribute("data-image-id") == str(collection["hopper"])


def test_bad_upload_shows_the_problem(
    live_server: str, page: Any, collection: dict[str, int], tmp_path: Path
) -> None:
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"plain text pretending to be a png")
    page.goto(live_server + "/images")
    page.set_input_files("#example", str(bad))
    page.locator("#status.error").wait_for()
    assert "not an image" in page.locator("#status").inner_text()


def test_adding_an_image_twice_quickly_uploads_it_once(
    live_server: str,
    page: Any,
    collection: dict[str, int],
    sample_images: dict[str, Image.Image],
    tag: str,
    tmp_path: Path,
) -> None:
    new = tmp_path / "new.png"
    new.write_bytes(unique_png(sample_images["flower"]))
    uploads: list[Any] = []

    def hold(route: Any) -> None:
        if route.request.method == "POST":
            uploads.append(route)
        else:
            route.continue_()

    page.route("**/images", hold)
    page.goto(live_server + "/images")
    page.click("#add-panel summary")
    page.set_input_files("#add-files", str(new))
    page.fill("#add-tags", tag)
    page.dblclick("#add-form button")
    page.wait_for_function("document.getElementById('status').textContent === 'Uploading…'")
    assert len(uploads) == 1 and page.locator("#add-form button").is_disabled()
    uploads[0].continue_()
    page.locator("#status:has-text('added')").wait_for()
    assert page.inner_text("#status") == "1 added, 0 duplicate(s), 0 rejected."
    listed = page.locator("#add-results li").all_inner_texts()
    assert len(listed) == 1 and listed[0].startswith("new.png: added (#")
    assert len(uploads) == 1 and page.locator("#add-form button").is_enabled()


@pytest.mark.parametrize("keyed", ["read"], indirect=True)
def test_thumbnails_load_under_protect_reads(
    live_server: str, page: Any, collection: dict[str, int], tag: str, keyed: str
) -> None:
    # An <img src> cannot send the key: the page fetches each thumbnail with it instead.
    page.goto(live_server + "/images")
    type_key(page)
    page.fill("#tag-filter", tag)
    page.fill("#q", "분홍색 꽃")
    page.click("#text-search button")
    page.locator(".img-card").first.wait_for()
    page.wait_for_function(
        "[...document.querySelectorAll('.img-card img')].every((i) => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator(".img-card img").first.evaluate("img => img.src.startsWith('blob:')")

    # The search's link opened in a new tab, which has no key yet: refused, then run once it is typed.
    tab = page.context.new_page()
    tab.goto(page.url)
    tab.locator("#status.error").wait_for()
    assert "API key" in tab.inner_text("#status") and tab.locator(".img-card").count() == 0
    type_key(tab)
    tab.locator(".img-card").first.wait_for()
    assert tab.locator(".img-card").count() == page.locator(".img-card").count()


def test_an_overlong_query_gets_a_message(live_server: str, page: Any) -> None:
    page.goto(live_server + "/images")
    page.fill("#q", "고양이 " * 50_000)  # past what a URL can carry: the page says so itself
    page.click("#text-search button")
    page.locator("#status.error").wait_for()
    assert "too long" in page.inner_text("#status")


def test_only_the_newest_search_shows_and_an_error_clears_old_results(
    live_server: str, page: Any, collection: dict[str, int], tag: str
) -> None:
    page.goto(live_server + "/images")
    page.fill("#tag-filter", f"#{tag}")  # as the cards write tags
    held: list[Any] = []
    page.route("**/images/search?*q=%EA%BD%83*", lambda route: held.append(route))  # "꽃" waits
    page.fill("#q", "꽃")
    page.click("#text-search button")
    page.wait_for_function("() => document.getElementById('status').textContent === 'Searching…'")
    page.fill("#q", "해군 장교")
    page.click("#text-search button")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('해군 장교')")
    assert len(held) == 1
    held[0].continue_()  # the first search answers last
    page.wait_for_load_state("networkidle")
    assert "해군 장교" in page.locator("#status").inner_text()
    assert page.locator(".img-card").count() == 3  # the tag filter with its "#" matched
    assert page.locator(".img-card").first.get_attribute("data-image-id") == str(collection["hopper"])
    # A refused search: the message in the error colour, and no results from before under it.
    problem = '{"title": "Model unavailable", "status": 503, "detail": "no image model is installed"}'
    page.route(
        "**/images/search?*",
        lambda route: route.fulfill(status=503, content_type="application/problem+json", body=problem),
    )
    page.click("#text-search button")
    page.locator("#status.error").wait_for()
    assert page.locator(".img-card").count() == 0
    assert page.locator("#status").inner_text() == "no image model is installed"
    color = page.locator("#status").evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(180, 35, 24)"


def test_browse_all_pages_through_the_collection(
    live_server: str, page: Any, collection: dict[str, int], tag: str
) -> None:
    newest_first = [str(i) for i in sorted(collection.values(), reverse=True)]
    page.goto(live_server + "/images")
    page.fill("#tag-filter", f"#{tag}")
    page.fill("#k", "2")  # the page size
    page.click("#browse")
    cards = page.locator(".img-card")
    page.wait_for_function("document.querySelectorAll('.img-card').length === 2")
    assert [c.get_attribute("data-image-id") for c in cards.all()] == newest_first[:2]
    assert page.inner_text("#status") == f"2 of 3 image(s) tagged #{tag}, newest first."
    assert page.locator(".img-card .img-source").first.inner_text().startswith("added ")
    # "More" asks for the page below the last card (the first page's `next_after`) and adds it below;
    # nothing remains after it.
    with page.expect_request("**/images/list?*") as asked:
        page.click("#more")
    assert "after=" in asked.value.url and "limit=2" in asked.value.url and "offset" not in asked.value.url
    page.wait_for_function("document.querySelectorAll('.img-card').length === 3")
    assert [c.get_attribute("data-image-id") for c in cards.all()] == newest_first
    assert page.inner_text("#status").startswith("3 of 3 image(s)")
    assert page.locator("#more").is_hidden()
    # The cards are the search's, thumbnails included.
    assert page.locator(".img-card img").first.evaluate("img => img.complete && img.naturalWidth > 0")

    # Browsing lives in the URL, page size included: opening it again lists the first page again.
    assert "browse=1" in page.url and f"tag=%23{tag}" in page.url and "k=2" in page.url
    url = page.url
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_function("document.querySelectorAll('.img-card').length === 2")
    assert page.input_value("#tag-filter") == f"#{tag}" and page.input_value("#k") == "2"
    assert [c.get_attribute("data-image-id") for c in page.locator(".img-card").all()] == newest_first[:2]

    # A "More" that fails keeps the page already shown, and can be tried again.
    page.route(
        "**/images/list?*after=*",
        lambda route: route.fulfill(
            status=503, content_type="application/problem+json", body='{"status": 503, "detail": "busy"}'
        ),
    )
    page.click("#more")
    page.locator("#status.error").wait_for()
    assert page.locator(".img-card").count() == 2 and page.locator("#more").is_visible()
    page.unroute("**/images/list?*after=*")
    page.click("#more")
    page.wait_for_function("document.querySelectorAll('.img-card').length === 3")
    assert page.inner_text("#status").startswith("3 of 3 image(s)")
    assert page.locator("#more").is_hidden()

    # A refused page: the message in red, and no cards from before under it.
    problem = '{"title": "Service unavailable", "status": 503, "detail": "the database is gone"}'
    page.route(
        "**/images/list?*",
        lambda route: route.fulfill(status=503, content_type="application/problem+json", body=problem),
    )
    page.click("#browse")
    page.locator("#status.error").wait_for()
    assert page.locator(".img-card").count() == 0
    assert page.inner_text("#status") == "the database is gone"


def test_more_after_deletes_shows_every_remaining_image(
    live_server: str, page: Any, image_service: ImageService, sample_images: dict[str, Image.Image], tag: str
) -> None:
    """Images deleted after the first page: "More" goes on below the last card shown (the cursor),
    and stays until nothing is left (a check of cards shown against `total` hid it too early)."""
    own = f"{tag}-more"
    res = image_service.add(
        [Upload(unique_png(sample_images["flower"]), f"f{i}.png", None, [own]) for i in range(6)]
    )
    newest_first = sorted((r.id for r in res if r.id is not None), reverse=True)
    page.goto(live_server + "/images")
    page.fill("#tag-filter", own)
    page.fill("#k", "3")
    page.click("#browse")
    page.wait_for_function("document.querySelectorAll('.img-card').length === 3")
    for image_id in newest_first[:3]:  # every card shown is deleted (another tab, another user)
        image_service.delete(image_id)
    page.click("#more")
    page.wait_for_function("document.querySelectorAll('.img-card').length === 6")
    ids = [int(c.get_attribute("data-image-id") or 0) for c in page.locator(".img-card").all()]
    assert ids == newest_first  # nothing skipped: the page after the deleted cards' cursor
    assert page.locator("#more").is_visible()  # total 3 < 6 cards shown, and the next page may hold more
    page.click("#more")
    page.wait_for_load_state("networkidle")
    assert page.locator(".img-card").count() == 6 and page.locator("#more").is_hidden()


def test_the_example_preview_goes_with_its_search(
    live_server: str,
    page: Any,
    collection: dict[str, int],
    sample_images: dict[str, Image.Image],
    tag: str,
    tmp_path: Path,
) -> None:
    """The example's preview stayed after its search failed, and under the results of later text
    searches, "Browse all" and "Find similar", which were not about it."""
    example = tmp_path / "example.png"
    example.write_bytes(unique_png(sample_images["flower"]))
    preview = page.locator("#example-preview")
    page.goto(live_server + "/images")
    page.fill("#tag-filter", tag)
    problem = '{"title": "Model unavailable", "status": 503, "detail": "no image model is installed"}'

    def refuse(route: Any) -> None:
        if route.request.method == "POST":
            route.fulfill(status=503, content_type="application/problem+json", body=problem)
        else:
            route.continue_()

    page.route("**/images/search?*", refuse)
    page.set_input_files("#example", str(example))
    page.locator("#status.error").wait_for()
    assert preview.is_hidden()
    page.unroute("**/images/search?*")

    def search_by_example() -> str:
        page.set_input_files("#example", str(example))
        page.locator("#status:has-text('example.png')").wait_for()
        assert preview.is_visible()
        return str(preview.get_attribute("src"))

    src = search_by_example()
    page.fill("#q", "꽃")
    page.click("#text-search button[type=submit]")
    page.locator("#status:has-text('“꽃”')").wait_for()
    assert preview.is_hidden()
    # ...and its object URL is let go (revoked: fetching it fails).
    assert page.evaluate("src => fetch(src).then(() => 'kept', () => 'revoked')", src) == "revoked"
    search_by_example()
    page.click("#browse")
    page.locator("#status:has-text('newest first')").wait_for()
    assert preview.is_hidden()
    search_by_example()
    page.locator(".img-card .img-similar").first.click()
    page.locator("#status:has-text('best match')").wait_for()
    page.wait_for_load_state("networkidle")
    assert preview.is_hidden() and "example.png" not in page.inner_text("#status")


def test_a_tagged_search_names_its_tags(
    live_server: str, page: Any, collection: dict[str, int], tag: str
) -> None:
    """ "No images found for “고양이”." when the tag filter matched nothing read as if the collection had
    no cat at all; and the count of the k best matches read as a count of matching images."""
    page.goto(live_server + "/images")
    page.fill("#tag-filter", f"{tag}-none, #{tag}-other")
    page.fill("#q", "고양이")
    page.click("#text-search button[type=submit]")
    page.locator("#status:has-text('No images')").wait_for()
    assert page.inner_text("#status") == f"No images tagged #{tag}-none #{tag}-other found for “고양이”."
    page.fill("#tag-filter", tag)
    page.fill("#k", "1")
    page.click("#text-search button[type=submit]")
    page.locator("#status:has-text('best match')").wait_for()
    assert page.inner_text("#status") == f"The best match for “고양이” among the images tagged #{tag}."
    assert page.locator(".img-card").count() == 1


def test_every_field_has_a_visible_label_and_the_drop_zone_a_name(live_server: str, page: Any) -> None:
    page.goto(live_server + "/images")
    page.click("#add-panel summary")
    for field in ("q", "tag-filter", "k", "add-files", "add-caption", "add-tags"):
        name = page.evaluate(
            """id => { const f = document.getElementById(id); const l = f.labels[0];
                if (!l || !l.checkVisibility()) return "";
                return [...l.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE)
                  .map((n) => n.textContent).join("").trim(); }""",
            field,
        )
        assert name, f"#{field} has no visible label"
    drop = page.locator("#drop")
    assert drop.get_attribute("role") == "button" and "image" in (drop.get_attribute("aria-label") or "")


def test_back_and_forward_return_to_earlier_searches(
    live_server: str, page: Any, collection: dict[str, int], tag: str
) -> None:
    """Searches replaced the history entry: Back left the page instead of going to the search before."""
    page.goto(live_server + "/images")
    page.fill("#tag-filter", tag)
    for q in ("분홍색 꽃", "해군 장교"):
        page.fill("#q", q)
        page.click("#text-search button[type=submit]")
        page.locator(f"#status:has-text('“{q}”')").wait_for()
    page.go_back()
    page.locator("#status:has-text('“분홍색 꽃”')").wait_for()
    assert page.input_value("#q") == "분홍색 꽃" and page.input_value("#tag-filter") == tag
    assert page.locator(".img-card").first.get_attribute("data-image-id") == str(collection["flower"])
    page.go_forward()
    page.locator("#status:has-text('“해군 장교”')").wait_for()
    assert page.locator(".img-card").first.get_attribute("data-image-id") == str(collection["hopper"])
    page.go_back()
    page.go_back()  # the page as opened: no search, no cards
    page.wait_for_function("document.querySelectorAll('.img-card').length === 0")
    assert page.url == live_server + "/images"
    assert page.input_value("#q") == "" and page.inner_text("#status") == ""


def test_the_query_length_is_counted_as_the_server_counts_it(
    live_server: str, page: Any, collection: dict[str, int], tag: str
) -> None:
    """The page counted UTF-16 units: 600 emoji (1,200 units) or 700 Korean characters typed
    decomposed (1,500 code points, 700 in NFC) were refused as too long; the server takes both."""
    page.goto(live_server + "/images")
    page.fill("#tag-filter", tag)
    for q in ["😀" * 600, unicodedata.normalize("NFD", "고양이 얼굴 " * 100).strip()]:
        page.fill("#q", q)
        page.click("#text-search button")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('The ')")
        assert page.locator(".img-card").count() == 3
    page.fill("#q", "😀" * 1001)
    page.click("#text-search button")
    page.locator("#status.error").wait_for()
    assert page.inner_text("#status") == "The description is too long: 1001 characters (the limit is 1000)."
    page.fill("#q", "\u200b\u2060")  # nothing the server would search for
    page.click("#text-search button")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Type')")


def test_a_refused_query_clears_the_results_and_the_address(
    live_server: str, page: Any, collection: dict[str, int], tag: str
) -> None:
    page.goto(live_server + "/images")
    page.fill("#tag-filter", tag)
    for q, message in [("", "Type what you are looking for."), ("a" * 1001, "The description is too long")]:
        page.fill("#q", "꽃")
        page.click("#text-search button")
        page.locator(".img-card").first.wait_for()
        assert "q=" in page.url
        page.fill("#q", q)
        page.click("#text-search button")
        page.locator("#status.error").wait_for()
        assert page.inner_text("#status").startswith(message)
        assert page.locator(".img-card").count() == 0
        assert page.url == live_server + "/images"


@pytest.mark.parametrize("k", ["0", "500", "2.5"])
def test_find_similar_names_the_results_field_when_it_is_out_of_range(
    live_server: str, page: Any, collection: dict[str, int], tag: str, k: str
) -> None:
    """The API's refusal named its parameter: "k: Input should be greater than or equal to 1"."""
    requests: list[str] = []
    page.goto(live_server + f"/images?q=%EA%BD%83&tag={tag}")
    page.locator(".img-card").first.wait_for()
    page.on("request", lambda r: requests.append(r.url) if "/similar" in r.url else None)
    page.fill("#k", k)
    page.locator(".img-card").first.locator(".img-similar").click()
    page.locator("#status.error").wait_for()
    assert page.inner_text("#status") == "Results must be a whole number from 1 to 200."
    assert page.locator(".img-card").count() == 0 and requests == []
