"""The keywords API on the real app and database (FastAPI TestClient)."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hanseek.api.app import create_app
from hanseek.api.state import AppState
from hanseek.config import Settings
from hanseek.keywords.ocr import OcrEngine
from hanseek.keywords.service import KeywordService
from tests.fixtures.api import contract_client

DATA = Path(__file__).parent / "data"
PAGE = (
    "구석기 시대 사람들은 뗀석기로 사냥을 하였다. 신석기 시대에는 빗살무늬토기를 만들었고, "
    "농경과 목축을 시작하였다. 신석기 시대 사람들은 움집에 살았고 가락바퀴로 옷을 만들었다."
)


def subject_name() -> str:
    return f"한국사-{uuid.uuid4().hex[:8]}"


def is_problem(r: Any, status: int) -> bool:
    return r.status_code == status and r.headers["content-type"].startswith("application/problem+json")


def test_weights_have_components_and_surfaces(client: TestClient) -> None:
    r = client.post("/keywords/weights", json={"text": PAGE, "method": "bm25"})
    assert r.status_code == 200, r.text
    body = r.json()
    terms = {t["term"]: t for t in body["terms"]}
    assert body["method"] == "bm25" and body["background_docs"] > 100_000
    stone = terms["뗀석기"]
    occ = stone["occurrences"][0]
    assert PAGE[occ["start"] : occ["end"]] == occ["surface"] == "뗀석기" and PAGE[occ["end"]] == "로"
    assert {"tf", "idf", "idf_background", "tf_saturated", "floored"} <= set(stone["components"])
    assert terms["빗살무늬토기"]["tag"] == "NNC" and terms["빗살무늬토기"]["parts"] == [
        "빗살",
        "무늬",
        "토기",
    ]
    weights = [t["weight"] for t in body["terms"]]
    assert weights == sorted(weights, reverse=True) and weights[0] == 1.0
    assert len(client.post("/keywords/weights", json={"text": PAGE, "limit": 3}).json()["terms"]) == 3


def test_cloze_endpoint(client: TestClient) -> None:
    r = client.post("/keywords/cloze", json={"text": PAGE, "count": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [b["number"] for b in body["blanks"]] == [1, 2, 3, 4]
    assert len({b["term"] for b in body["blanks"]}) == 4
    for b in body["blanks"]:
        assert PAGE[b["start"] : b["end"]] == b["answer"]
        assert f"({b['number']}) ______" in body["text"]
    pieces = [s["text"] if s["text"] is not None else f"<{s['blank']}>" for s in body["segments"]]
    assert sum(p.startswith("<") for p in pieces) == 4
    again = client.post("/keywords/cloze", json={"text": PAGE, "count": 4}).json()
    assert again == body  # deterministic


def test_bad_input_is_a_clear_4xx(client: TestClient, db_settings: Settings) -> None:
    assert is_problem(client.post("/keywords/weights", json={"text": ""}), 422)
    assert is_problem(client.post("/keywords/weights", json={"text": "   \n "}), 422)
    huge = "가" * (db_settings.max_text_chars + 1)
    for path, body in (
        ("/keywords/cloze", {"text": huge}),
        ("/keywords/weights", {"text": huge}),
        ("/keywords/weights/batch", {"texts": [PAGE, huge]}),
    ):
        r = client.post(path, json=body)  # a size limit, as the body and batch limits are
        limit = f"{db_settings.max_text_chars + 1:,} characters; the limit is {db_settings.max_text_chars:,}"
        assert is_problem(r, 413) and limit in r.json()["detail"], path
    assert r.json()["detail"].startswith("texts[1] has ")
    r = client.post("/keywords/weights", json={"text": PAGE, "subject": "없는과목-" + uuid.uuid4().hex})
    assert is_problem(r, 404) and "unknown subject" in r.json()["detail"]
    assert is_problem(client.post("/keywords/weights", json={"text": PAGE, "method": "magic"}), 422)
    assert is_problem(client.post("/keywords/cloze", json={"text": PAGE, "ratio": 0.2, "count": 3}), 422)
    assert is_problem(client.post("/keywords/cloze", json={"text": PAGE, "ratio": 1.5}), 422)
    assert is_problem(client.post("/keywords/weights", json={"text": PAGE, "k1": -1}), 422)
    assert is_problem(client.post("/keywords/subjects/x/documents", json={"documents": []}), 422)
    assert is_problem(client.put("/keywords/subjects/x/dictionary", json={"csv": "a,b\nc,d"}), 422)


def test_corpus_lifecycle_and_floor(client: TestClient) -> None:
    name = subject_name()
    docs = [
        {"text": "구석기 시대에는 뗀석기를 썼다.", "title": "구석기"},
        {"text": "신석기 시대에는 간석기와 토기를 썼다.", "title": "신석기"},
        {"text": "청동기 시대에는 고인돌을 만들었다.", "title": "청동기"},
    ]
    r = client.post(f"/keywords/subjects/{name}/documents", json={"documents": docs})
    assert r.status_code == 201, r.text
    added = r.json()["documents"]
    assert r.json()["subject"]["documents"] == 3
    md = "# 단원\n## 고조선\n**위만 조선**의 성립\n## 삼국\n고구려, 백제, 신라\n"
    r = client.post(f"/keywords/subjects/{name}/documents", json={"content": md, "kind": "markdown"})
    assert r.status_code == 201 and r.json()["subject"]["documents"] == 6

    listed = client.get(f"/keywords/subjects/{name}/documents").json()
    assert [d["title"] for d in listed[:3]] == ["구석기", "신석기", "청동기"]
    assert name in [s["name"] for s in client.get("/keywords/subjects").json()]

    w = client.post("/keywords/weights", json={"text": PAGE, "subject": name}).json()
    assert w["corpus_docs"] == 6
    era = next(t for t in w["terms"] if t["term"] == "시대")
    assert era["components"]["df_subject"] == 3

    # Keyword floor: a listed word never weighs less than the floor.
    r = client.put(f"/keywords/subjects/{name}/keywords", json={"words": ["가락바퀴", "옷"], "floor": 0.8})
    assert r.status_code == 200 and r.json()["keywords"] == 2 and r.json()["floor"] == pytest.approx(0.8)
    w = client.post("/keywords/weights", json={"text": PAGE, "subject": name}).json()
    terms = {t["term"]: t for t in w["terms"]}
    assert terms["옷"]["weight"] >= 0.8 - 1e-6 and terms["옷"]["components"]["floored"] is True
    no_floor = client.post(
        "/keywords/weights", json={"text": PAGE, "subject": name, "use_floor": False}
    ).json()
    assert {t["term"]: t for t in no_floor["terms"]}["옷"]["weight"] < 0.8

    # Dictionary from CSV drives the dictionary method.
    r = client.put(f"/keywords/subjects/{name}/dictionary", json={"csv": "word,weight\n움집,5\n목축,2\n"})
    assert r.status_code == 200 and r.json()["dictionary_words"] == 2
    d = client.post(
        "/keywords/weights", json={"text": PAGE, "subject": name, "method": "dictionary", "use_floor": False}
    )
    assert [t["term"] for t in d.json()["terms"][:2]] == ["움집", "목축"]

    # Removing a document updates the statistics.
    assert client.delete(f"/keywords/subjects/{name}/documents/{added[0]['id']}").status_code == 204
    assert client.get(f"/keywords/subjects/{name}").json()["documents"] == 5
    assert is_problem(client.delete(f"/keywords/subjects/{name}/documents/{added[0]['id']}"), 404)
    assert client.delete(f"/keywords/subjects/{name}").status_code == 204
    assert is_problem(client.get(f"/keywords/subjects/{name}"), 404)


def test_ocr_reads_a_korean_page_photo(client: TestClient) -> None:
    png = (DATA / "page_ko.png").read_bytes()
    r = client.post("/keywords/ocr", files={"image": ("page.png", png, "image/png")})
    assert r.status_code == 200, r.text
    text = r.json()["text"]
    for word in ("구석기", "빗살무늬토기", "농경", "고인돌"):
        assert word in text
    r = client.post("/keywords/ocr", files={"image": ("x.png", b"not an image", "image/png")})
    assert is_problem(r, 422) and "not an image" in r.json()["detail"]
    r = client.post("/keywords/ocr", files={"image": ("cut.png", png[: len(png) // 2], "image/png")})
    assert is_problem(r, 422) and "corrupt or truncated" in r.json()["detail"]
    assert "Error" not in r.json()["detail"]  # no Python exception class names in a person's message


@pytest.fixture()
def no_tesseract_client(db_settings: Settings, db: Any) -> Iterator[TestClient]:
    state = AppState(db_settings, db)
    state.service(
        "keywords", lambda st: KeywordService(st.db, ocr=OcrEngine(tesseract_cmd="/nonexistent/tesseract"))
    )
    with contract_client(create_app(db_settings, state=state), db_settings) as c:
        yield c


def test_ocr_missing_tesseract_is_503(no_tesseract_client: TestClient) -> None:
    png = (DATA / "page_ko.png").read_bytes()
    r = no_tesseract_client.post("/keywords/ocr", files={"image": ("page.png", png, "image/png")})
    assert is_problem(r, 503) and "tesseract" in r.json()["detail"]


def test_missing_language_data_is_named() -> None:
    engine = OcrEngine(languages="kor+zzz")
    with pytest.raises(Exception, match="zzz"):
        engine.check()


def test_cloze_page(client: TestClient) -> None:
    r = client.get("/cloze")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert 'id="cloze-form"' in r.text and "/static/cloze.js" in r.text
    assert client.get("/static/cloze.js").status_code == 200


@pytest.mark.parametrize("text", ["...!!! ???", "\x00\x01 가나다\x00", "😀😀 🎉", "a" * 5000, "1234 5678"])
def test_odd_pages_never_500(client: TestClient, text: str) -> None:
    r = client.post("/keywords/weights", json={"text": text})
    assert r.status_code == 200, r.text
    r = client.post("/keywords/cloze", json={"text": text, "ratio": 0.5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["blanks"]) <= body["candidates"]
    for b in body["blanks"]:
        assert text[b["start"] : b["end"]] == b["answer"]


def test_document_with_nul_is_refused_without_partial_writes(client: TestClient) -> None:
    name = subject_name()
    r = client.post(
        f"/keywords/subjects/{name}/documents",
        json={"documents": [{"text": "정상 문서입니다"}, {"text": "깨진\x00문서"}]},
    )
    assert is_problem(r, 422) and "NUL" in r.json()["detail"]
    r = client.get(f"/keywords/subjects/{name}")
    assert r.status_code == 404 or r.json()["documents"] == 0


def test_weights_batch_equals_single_calls(client: TestClient) -> None:
    texts = [PAGE, "고려의 광종은 노비안검법을 시행했다.", "OSI 참조 모델의 7계층"]
    r = client.post("/keywords/weights/batch", json={"texts": texts, "limit": 5})
    assert r.status_code == 200, r.text
    singles = [client.post("/keywords/weights", json={"text": t, "limit": 5}).json() for t in texts]
    assert r.json() == singles
    r = client.post("/keywords/weights/batch", json={"texts": [PAGE, " "]})
    assert is_problem(r, 422) and "texts[1]" in r.json()["detail"]
    assert is_problem(client.post("/keywords/weights/batch", json={"texts": []}), 422)


def test_keywords_under_a_name_with_edge_spaces_land_on_the_trimmed_subject(client: TestClient) -> None:
    """The name is trimmed once: keywords and floor go to the same subject, in one transaction."""
    name = f"수학-{uuid.uuid4().hex[:6]}"
    r = client.put(
        f"/keywords/subjects/%20{name}%20/keywords", json={"words": ["미분", "적분"], "floor": 0.7}
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == name and r.json()["keywords"] == 2 and r.json()["floor"] == pytest.approx(0.7)


def test_jsonl_content_that_cannot_be_stored_is_a_422(client: TestClient) -> None:
    """The body is valid JSON; a line of its JSON Lines content decodes to text PostgreSQL cannot hold."""
    name = subject_name()
    for line, what in (
        ('{"text": "토기 \\ud800 문서"}', "surrogate"),
        ('{"text": "토기 문서", "title": "a\\u0000b"}', "NUL"),
    ):
        body = {"content": line + "\n", "kind": "jsonl"}
        r = client.post(f"/keywords/subjects/{name}/documents", json=body)
        assert is_problem(r, 422) and what in r.json()["detail"], r.text
    assert client.get(f"/keywords/subjects/{name}").status_code == 404  # nothing was written


def test_subject_names_are_nfc_and_fit_a_url(client: TestClient) -> None:
    import unicodedata

    name = subject_name()
    assert client.post("/keywords/subjects", json={"name": name}).status_code == 201
    nfd = unicodedata.normalize("NFD", name)
    assert nfd != name
    r = client.post(f"/keywords/subjects/{nfd}/documents", json={"documents": [{"text": PAGE}]})
    assert r.status_code == 201 and r.json()["subject"]["name"] == name  # the same subject
    assert client.get(f"/keywords/subjects/{nfd}").json()["documents"] == 1
    r = client.post("/keywords/weights", json={"text": PAGE, "subject": f" {nfd} "})
    assert r.status_code == 200, r.text
    for bad in ("a/b", "탭\t이름"):
        r = client.post("/keywords/subjects", json={"name": bad})
        assert is_problem(r, 422) and "cannot contain" in r.json()["detail"], bad
    assert client.delete(f"/keywords/subjects/{nfd}").status_code == 204


def test_a_dictionary_weight_past_the_stored_range_is_a_422(client: TestClient) -> None:
    name = subject_name()
    r = client.put(f"/keywords/subjects/{name}/dictionary", json={"csv": "토기,1e39\n"})
    assert is_problem(r, 422) and "토기" in r.json()["detail"]
    r = client.put(f"/keywords/subjects/{name}/dictionary", json={"weights": {"토기": 3e38}})
    assert r.status_code == 200 and r.json()["dictionary_words"] == 1


def test_a_subject_deleted_during_a_write_is_a_409(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer re-reads the subject after the write committed; a DELETE in between is a conflict,
    not the 404 "create it or add documents first" that the endpoint itself contradicts."""
    name = subject_name()
    real = KeywordService.add_documents

    def then_deleted(self: KeywordService, subject: str, docs: Any, **kw: Any) -> Any:
        stored = real(self, subject, docs, **kw)
        self.delete_subject(subject)  # another request's DELETE commits now
        return stored

    monkeypatch.setattr(KeywordService, "add_documents", then_deleted)
    r = client.post(f"/keywords/subjects/{name}/documents", json={"documents": [{"text": PAGE}]})
    assert is_problem(r, 409) and "deleted by another request" in r.json()["detail"]


def test_a_subject_deleted_between_the_batches_of_one_add_is_a_409_and_stays_deleted(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More than 64 documents are written in batches of 64, one transaction each. A DELETE that
    committed after the first batch was undone by the second, which created the subject again with
    only the request's tail: the DELETE's 204 was void and the add answered 201 listing the ids of
    the first batch, which the DELETE had removed."""
    from hanseek.keywords.store import CorpusStore

    name = subject_name()
    real = CorpusStore.add_documents
    batches: list[int] = []

    def then_deleted(self: CorpusStore, subject: str, docs: Any, **kw: Any) -> Any:
        stored = real(self, subject, docs, **kw)
        batches.append(len(stored))
        if len(batches) == 1:
            self.delete_subject(subject)  # another request's DELETE commits between the batches
        return stored

    monkeypatch.setattr(CorpusStore, "add_documents", then_deleted)
    docs = [{"text": f"구석기 시대 사람들은 뗀석기를 사용하였다 {i}번째 문서."} for i in range(70)]
    r = client.post(f"/keywords/subjects/{name}/documents", json={"documents": docs})
    assert is_problem(r, 409) and "deleted by another request" in r.json()["detail"], r.text
    assert r.json()["title"] == "Subject deleted"  # as when the DELETE commits after the last batch
    assert batches == [64]  # the second batch wrote nothing
    assert is_problem(client.get(f"/keywords/subjects/{name}"), 404)  # the DELETE stands


def test_a_bad_first_dictionary_row_is_a_422_and_keeps_the_dictionary(client: TestClient) -> None:
    """A first row with a mistyped weight was taken for a header: the row was lost, or the PUT
    answered 200 with no words and emptied the dictionary."""
    name = subject_name()
    r = client.put(f"/keywords/subjects/{name}/dictionary", json={"csv": "단어,가중치\n움집,5\n목축,2\n"})
    assert r.status_code == 200 and r.json()["dictionary_words"] == 2, r.text
    for csv_text, said in (
        ("뗀석기,0.9x\n고인돌,0.5\n", "line 1: weight '0.9x' is not a number"),
        ("뗀석기,O.9\n", "line 1: weight 'O.9' is not a number"),
        ("word,weight\n", "no words"),
        ("", "no words"),
    ):
        r = client.put(f"/keywords/subjects/{name}/dictionary", json={"csv": csv_text})
        assert is_problem(r, 422) and said in r.json()["detail"], (csv_text, r.text)
    assert client.get(f"/keywords/subjects/{name}").json()["dictionary_words"] == 2  # untouched
    r = client.put(f"/keywords/subjects/{name}/dictionary", json={"weights": {}})
    assert r.status_code == 200 and r.json()["dictionary_words"] == 0  # the explicit way to empty it


@pytest.fixture()
def small_limits(db_settings: Settings, db: Any) -> Iterator[TestClient]:
    settings = db_settings.model_copy(update={"max_batch_items": 3, "max_text_chars": 50})
    state = AppState(settings, db)
    state.ready = True
    with contract_client(create_app(settings, state=state), settings) as c:
        yield c


def test_documents_per_request_follow_max_batch_items(small_limits: TestClient) -> None:
    """The documents of one request were capped by a fixed 1,000, whatever the setting said."""
    name = subject_name()
    url = f"/keywords/subjects/{name}/documents"
    r = small_limits.post(url, json={"documents": [{"text": f"토기 {i}"} for i in range(4)]})
    assert is_problem(r, 413) and "4 documents in one request; the limit is 3" in r.json()["detail"]
    r = small_limits.post(url, json={"content": "가\n\n나\n\n다\n\n라\n", "split": "paragraph"})
    assert is_problem(r, 413) and "the limit is 3" in r.json()["detail"]  # split ones count too
    assert small_limits.get(f"/keywords/subjects/{name}").status_code == 404  # nothing was written
    r = small_limits.post(url, json={"documents": [{"text": "가" * 51}]})
    assert is_problem(r, 413) and "51 characters; the limit is 50" in r.json()["detail"]
    r = small_limits.post(url, json={"documents": [{"text": f"토기 {i}"} for i in range(3)]})
    assert r.status_code == 201 and r.json()["subject"]["documents"] == 3, r.text
    assert small_limits.delete(f"/keywords/subjects/{name}").status_code == 204


def test_subject_name_length_is_counted_in_nfc_by_every_endpoint(client: TestClient) -> None:
    """`POST /keywords/subjects` counted the raw input (NFD: two code points a syllable) while the
    path endpoints count the NFC name: the same name was refused by one and created by the other."""
    import unicodedata

    tag = uuid.uuid4().hex[:4]
    nfc = "한" * (60 - len(tag)) + tag
    nfd = unicodedata.normalize("NFD", nfc)
    assert len(nfd) > 100
    r = client.post("/keywords/subjects", json={"name": nfd})
    assert r.status_code == 201 and r.json()["name"] == nfc, r.text
    r = client.post(f"/keywords/subjects/{nfd}/documents", json={"documents": [{"text": PAGE}]})
    assert r.status_code == 201 and r.json()["subject"]["name"] == nfc, r.text
    too_long = "한" * 101
    for r in (
        client.post("/keywords/subjects", json={"name": too_long}),
        client.post(f"/keywords/subjects/{too_long}/documents", json={"documents": [{"text": PAGE}]}),
    ):
        assert is_problem(r, 422) and "longer than 100 characters" in r.json()["detail"], r.text
    assert client.delete(f"/keywords/subjects/{nfc}").status_code == 204


# -- session 18 ------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_markdown_content_with_a_long_blank_line_is_converted_quickly(client: TestClient) -> None:
    """50,000 spaces on one line took 42 s of one core (quadratic table-rule pattern), stalling
    every other request; 100,000 "[" or "![" likewise, only to be refused as too long."""
    import time

    name = subject_name()
    for content, status in (
        ("제목\n" + " " * 50_000 + "x", 201),
        ("토기 " + "[" * 100_000, 413),  # kept as text: over HANSEEK_MAX_TEXT_CHARS once converted
        ("토기 " + "![" * 100_000, 413),
    ):
        started = time.perf_counter()
        r = client.post(f"/keywords/subjects/{name}/documents", json={"content": content, "kind": "markdown"})
        assert r.status_code == status, r.text
        assert time.perf_counter() - started < 10.0  # well under 1 s now
    assert client.delete(f"/keywords/subjects/{name}").status_code == 204


def test_deeply_nested_json_lines_content_is_a_422(client: TestClient) -> None:
    """json.loads raised RecursionError, which only JSONDecodeError was caught for: a 500."""
    name = subject_name()
    r = client.post(f"/keywords/subjects/{name}/documents", json={"content": "[" * 100_000, "kind": "jsonl"})
    assert is_problem(r, 422) and "input:1: JSON nested too deeply" in r.json()["detail"], r.text
    assert client.get(f"/keywords/subjects/{name}").status_code == 404  # nothing was written


def test_a_dictionary_csv_field_over_the_csv_limit_is_a_422(client: TestClient) -> None:
    """csv.Error ("field larger than field limit") is not a ValueError: a 500."""
    name = subject_name()
    for csv_text in (
        "a" * 140_000 + ",1",
        '토기,1\n"' + "a" * 140_000 + ",1",
    ):  # the second: a quote left open
        r = client.put(f"/keywords/subjects/{name}/dictionary", json={"csv": csv_text})
        assert is_problem(r, 422) and "a field is longer than 131,072 characters" in r.json()["detail"]
    assert client.get(f"/keywords/subjects/{name}").status_code == 404  # nothing was written


def test_a_huge_character_reference_in_markdown_becomes_u_fffd(client: TestClient) -> None:
    """html.unescape's int() refused more than 4,300 digits (ValueError: a 500). Out of range, the
    reference converts as html.unescape converts one: U+FFFD."""
    name = subject_name()
    content = "토기 &#" + "9" * 5000 + "; 문서"
    r = client.post(f"/keywords/subjects/{name}/documents", json={"content": content, "kind": "markdown"})
    assert r.status_code == 201 and r.json()["documents"][0]["title"] == "토기 \ufffd 문서", r.text
    assert client.delete(f"/keywords/subjects/{name}").status_code == 204


def test_json_weights_without_a_word_are_refused_and_keep_the_dictionary(client: TestClient) -> None:
    """{"weights": {"   ": 1}} answered 200 and emptied the dictionary; the same as CSV was a 422."""
    name = subject_name()
    url = f"/keywords/subjects/{name}/dictionary"
    assert client.put(url, json={"weights": {"토기": 1, "움집": 2}}).json()["dictionary_words"] == 2
    for weights in ({"   ": 1}, {"\u0000": 1}):
        for replace in (True, False):
            r = client.put(url, json={"weights": weights, "replace": replace})
            assert is_problem(r, 422) and "no words" in r.json()["detail"], (weights, r.text)
    assert client.get(f"/keywords/subjects/{name}").json()["dictionary_words"] == 2  # untouched
    r = client.put(url, json={"weights": {"  ": 1, "고인돌": 3}})  # a blank key beside words: skipped
    assert r.status_code == 200 and r.json()["dictionary_words"] == 1
    r = client.put(url, json={"weights": {}})
    assert r.status_code == 200 and r.json()["dictionary_words"] == 0
    assert client.delete(f"/keywords/subjects/{name}").status_code == 204


def test_a_json_lines_title_has_the_documents_title_limit(client: TestClient) -> None:
    name = subject_name()
    url = f"/keywords/subjects/{name}/documents"
    r = client.post(url, json={"documents": [{"text": PAGE, "title": "가" * 501}]})
    assert r.status_code == 422  # documents[].title: max_length 500, as before
    lines = [json.dumps({"text": PAGE, "title": "가" * 500}), json.dumps({"text": PAGE, "title": "가" * 501})]
    r = client.post(url, json={"content": "\n".join(lines), "kind": "jsonl"})
    assert is_problem(r, 422), r.text
    assert "input:2: title has 501 characters; the limit is 500" in r.json()["detail"]
    assert client.get(f"/keywords/subjects/{name}").status_code == 404  # nothing was written


def test_a_subject_name_path_that_is_not_utf8_is_refused(client: TestClient) -> None:
    """Starlette decodes %FF (and %FE, ...) to U+FFFD: a subject "\ufffd" was created, the same for
    every such byte string."""
    for method, path, body in (
        ("PUT", "/keywords/subjects/%FF/keywords", {"words": ["토기"]}),
        ("POST", "/keywords/subjects/%FE%FF/documents", {"documents": [{"text": PAGE}]}),
        ("PUT", "/keywords/subjects/a%C3/dictionary", {"weights": {"토기": 1}}),
        ("GET", "/keywords/subjects/%FF", None),
        ("GET", "/keywords/subjects/%FF/documents", None),
        ("DELETE", "/keywords/subjects/%FF", None),
        ("DELETE", "/keywords/subjects/%FF/documents/1", None),
    ):
        r = client.request(method, path, json=body)
        assert is_problem(r, 422) and "not valid UTF-8" in r.json()["detail"], (method, path, r.text)
    assert all("\ufffd" not in s["name"] for s in client.get("/keywords/subjects").json())
    # U+FFFD sent as such (its UTF-8, %EF%BF%BD) is looked up, but no subject may be named with it.
    assert is_problem(client.get("/keywords/subjects/%EF%BF%BD"), 404)
    r = client.put("/keywords/subjects/%EF%BF%BD/keywords", json={"words": ["토기"]})
    assert is_problem(r, 422) and "U+FFFD" in r.json()["detail"], r.text
    r = client.post("/keywords/subjects", json={"name": "한국사\ufffd"})
    assert is_problem(r, 422) and "U+FFFD" in r.json()["detail"], r.text


def test_content_past_the_document_count_is_refused_before_it_is_converted(
    small_limits: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Markdown file of a million headings was converted section by section (13 s of one core for 4 MB)
    before the count refused it."""
    from hanseek.keywords import ingest

    converted: list[str] = []
    real = ingest.markdown_to_text
    monkeypatch.setattr(ingest, "markdown_to_text", lambda md, **kw: converted.append(md) or real(md, **kw))
    name = subject_name()
    url = f"/keywords/subjects/{name}/documents"
    r = small_limits.post(url, json={"content": "# 가\n토기\n" * 1000, "kind": "markdown"})
    assert is_problem(r, 413) and "the limit is 3" in r.json()["detail"], r.text
    assert converted == []
    r = small_limits.post(
        url, json={"documents": [{"text": "토기"}] * 2, "content": "# 가\n# 나\n", "kind": "markdown"}
    )
    assert is_problem(r, 413) and "those split from content" in r.json()["detail"], r.text
    assert small_limits.get(f"/keywords/subjects/{name}").status_code == 404  # nothing was written


def test_a_word_too_long_for_a_term_is_a_422_not_a_500(client: TestClient) -> None:
    """A 1,000-syllable "word" in a keyword list or dictionary overflowed the terms' btree key
    (ProgramLimitExceeded: a 500 here, a traceback from the CLI) until session 18."""
    name = subject_name()
    long_word = "가" * 1000
    r = client.put(f"/keywords/subjects/{name}/keywords", json={"words": ["토기", long_word]})
    assert is_problem(r, 422) and "a word has at most 100" in r.json()["detail"], r.text
    r = client.put(f"/keywords/subjects/{name}/dictionary", json={"weights": {long_word: 1}})
    assert is_problem(r, 422) and "a word has at most 100" in r.json()["detail"], r.text
    r = client.put(f"/keywords/subjects/{name}/keywords", json={"words": ["가" * 100]})
    assert r.status_code == 200, r.text


def test_document_pages_by_after_skip_nothing_when_one_is_removed_between_pages(client: TestClient) -> None:
    """With `offset` alone, a document removed from the first page moved the next page up by one,
    and a document that was never removed went unlisted (until session 18)."""
    name = subject_name()
    url = f"/keywords/subjects/{name}/documents"
    texts = [f"{PAGE} {i}번째 문서" for i in range(5)]
    r = client.post(url, json={"documents": [{"text": t} for t in texts]})
    assert r.status_code == 201, r.text
    ids = [d["id"] for d in client.get(url, params={"limit": 10}).json()]
    assert len(ids) == 5 and ids == sorted(ids)
    first = client.get(url, params={"limit": 2}).json()
    assert [d["id"] for d in first] == ids[:2]
    assert client.delete(f"{url}/{ids[0]}").status_code == 204
    second = client.get(url, params={"limit": 2, "after": first[-1]["id"]}).json()
    assert [d["id"] for d in second] == ids[2:4]
    assert [d["id"] for d in client.get(url, params={"after": ids[3]}).json()] == ids[4:]
    assert client.get(url, params={"after": -1}).status_code == 422
    assert client.delete(f"/keywords/subjects/{name}").status_code == 204
