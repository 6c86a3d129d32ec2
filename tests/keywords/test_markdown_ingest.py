import json
import re
from pathlib import Path
from typing import Any

import pytest

from hanseek.keywords import ingest, markdown
from hanseek.keywords.ingest import (
    IngestError,
    Split,
    documents_from_text,
    parse_dictionary_csv,
    parse_word_list,
    read_documents,
)
from hanseek.keywords.markdown import markdown_to_text, split_sections

MD = """# 한국사 요약
<!-- TOC -->
- [[3] 선사시대](#3-선사시대)
	- [가. 구석기](#가-구석기)
<!-- /TOC -->

## 라이선스
```
MIT License
```

## [3] 선사시대
| 구분 | 구석기 | 신석기 |
|:-:|:-:|:-:|
| **도구** | **뗀석기**, 뼈도구 | **빗살무늬토기**<br>**가락바퀴** |

1. **위만 조선**: ~BC 194, `철기` 문화 [링크](http://x.y) ~~삭제~~ _기울임_&nbsp;끝
"""


def test_markdown_to_text_keeps_bold_spans() -> None:
    p = markdown_to_text(MD, keep_bold=True)
    assert "TOC" not in p.text and "선사시대](#" not in p.text and "MIT License" not in p.text
    assert "**" not in p.text and "<br>" not in p.text and "|" not in p.text
    assert [p.text[s:e] for s, e in p.bold] == ["도구", "뗀석기", "빗살무늬토기", "가락바퀴", "위만 조선"]
    assert "철기 문화 링크 삭제 기울임 끝" in p.text
    assert markdown_to_text(MD).text == p.text


def test_split_sections() -> None:
    secs = split_sections(MD)
    assert [s.split("\n", 1)[0] for s in secs] == ["# 한국사 요약", "## 라이선스", "## [3] 선사시대"]


def test_documents_from_files(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(MD, encoding="utf-8")
    (tmp_path / "b.txt").write_text("첫 문단입니다.\n\n둘째 문단입니다.\n", encoding="utf-8")
    lines = [
        json.dumps({"text": "고려의 광종", "title": "광종"}, ensure_ascii=False),
        "",
        json.dumps("문자열 문서"),
    ]
    (tmp_path / "c.jsonl").write_text("\n".join(lines), encoding="utf-8")
    md_docs = read_documents(tmp_path / "a.md")
    assert len(md_docs) == 3 and md_docs[2].source == "a.md"
    assert len(read_documents(tmp_path / "a.md", split=Split.NONE)) == 1
    assert len(read_documents(tmp_path / "b.txt")) == 1
    assert [d.body for d in read_documents(tmp_path / "b.txt", split=Split.PARAGRAPH)] == [
        "첫 문단입니다.",
        "둘째 문단입니다.",
    ]
    jl = read_documents(tmp_path / "c.jsonl")
    assert [(d.body, d.title) for d in jl] == [("고려의 광종", "광종"), ("문자열 문서", "문자열 문서")]
    (tmp_path / "d.pdf").write_bytes(b"%PDF")
    with pytest.raises(IngestError, match="unsupported"):
        read_documents(tmp_path / "d.pdf")
    with pytest.raises(IngestError, match="not JSON"):
        documents_from_text("{oops", kind="jsonl")
    with pytest.raises(IngestError, match="no text field"):
        documents_from_text('{"id": 1}', kind="jsonl")


def test_dictionary_csv_and_word_list() -> None:
    d = parse_dictionary_csv("word,weight\n빗살무늬 토기,3\n# 주석\n\nOSI,1.5\n")
    assert d == {"빗살무늬토기": 3.0, "osi": 1.5}
    with pytest.raises(IngestError, match="not a number"):
        parse_dictionary_csv("a,1\nb,x\n")
    with pytest.raises(IngestError, match=">= 0"):
        parse_dictionary_csv("a,-1\n")
    with pytest.raises(IngestError, match="word,weight"):
        parse_dictionary_csv("a\n")
    assert parse_dictionary_csv("\ufeff# 한국사\n단어,가중치\n토기,2\n") == {"토기": 2.0}
    assert parse_dictionary_csv("Term,Score\n토기,2\n") == {"토기": 2.0}


@pytest.mark.parametrize(
    ("csv_text", "said"),
    [
        ("뗀석기,0.9x\n고인돌,0.5\n", "line 1: weight '0.9x' is not a number"),
        ("뗀석기,O.9\n", "line 1: weight 'O.9' is not a number"),
        ("x,abc\n", "line 1: weight 'abc' is not a number"),
        ("word,0.9x\n", "line 1: weight '0.9x' is not a number"),  # a word column beside a typo
        ("word,weight\n고인돌,0.5\n토기,x\n", "line 3"),
    ],
)
def test_a_bad_weight_on_the_first_row_is_an_error_not_a_header(csv_text: str, said: str) -> None:
    """Any first row whose weight failed to parse used to be dropped as a header, so a typo lost
    the row, or left no words at all and emptied the dictionary it replaced."""
    with pytest.raises(IngestError, match=re.escape(said)):
        parse_dictionary_csv(csv_text)


@pytest.mark.parametrize("csv_text", ["", "\n\n", "word,weight\n", "# 주석만\n\n단어,가중치\n"])
def test_a_dictionary_csv_without_words_is_refused(csv_text: str) -> None:
    with pytest.raises(IngestError, match="no words"):
        parse_dictionary_csv(csv_text)
    assert parse_word_list("뗀석기\n# x\n빗살무늬토기, 5\n\n") == ["뗀석기", "빗살무늬토기"]


def test_blank_lines_cost_linear_time_and_stay_blank_lines() -> None:
    """Line patterns that let \\s cross newlines took cubic time on runs of blank lines (a 2 KB body
    of them held a worker 26 s) and could join the lines around them."""
    import time

    body = "# 제목\n본문\n" + "\n" * 2000 + "| a | b |\n|---|---|\n| 1 | 2 |\n\n> 인용\n끝"
    started = time.perf_counter()
    text = markdown_to_text(body).text
    assert time.perf_counter() - started < 2.0  # generous: it was 26 s
    assert "본문" in text and "끝" in text and "인용" in text and "---" not in text


def test_html_tags_go_but_comparisons_in_the_text_stay() -> None:
    md = '부등식 a<b 이면 전압 b>a 이다.\n<div class="note">주의<br/>끝</div> <TD align=center>셀</TD>'
    text = markdown_to_text(md).text
    assert "a<b 이면 전압 b>a" in text  # not a tag: Korean where attributes would be
    assert "<div" not in text and "<br" not in text and "<TD" not in text and "</div>" not in text
    assert "주의" in text and "끝" in text and "셀" in text


def test_json_lines_split_at_newlines_only() -> None:
    """json.dumps(..., ensure_ascii=False) leaves U+2028, U+0085 and \\x1c-\\x1e unescaped inside a
    string; str.splitlines() broke the line there, so valid JSON Lines were refused."""
    rows = [{"text": "구석기 시대\u2028사람들은"}, {"text": "신석기\x85시대\x1e토기"}]
    content = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
    docs = documents_from_text(content, kind="jsonl")
    assert [d.body for d in docs] == [r["text"] for r in rows]


# -- session 18: quadratic patterns, inputs that were tracebacks, limits -------------------------

# Inputs on which one regular expression tried every start and scanned to the end from each, or split
# a run of blanks between two [ \t]* groups: quadratic (50,000 spaces took 42 s through the API).
_QUADRATIC_BEFORE = {
    "blank line": lambda n: "제목\n" + " " * n + "x",  # _TABLE_RULE
    "open brackets": lambda n: "[" * n,  # _LINK
    "open images": lambda n: "![" * n,  # _IMAGE, then _LINK
    "links never closed": lambda n: "[](" * n,
    "open comments": lambda n: "<!--" * n,  # _COMMENT
    "TOC anchors never closed": lambda n: "- [](#\n" * n,  # _TOC_LINE, over lines
    "one long TOC line": lambda n: "- [" + "](#" * n,
}


def _seconds(fn: Any) -> float:
    import time

    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("make", list(_QUADRATIC_BEFORE.values()), ids=list(_QUADRATIC_BEFORE))
def test_markdown_conversion_time_grows_linearly(make: Any) -> None:
    """Four times the input may take about four times as long, not sixteen. The slack absorbs timer
    noise on a busy machine; before session 18 these took 10 to 60 times as long."""
    small, large = make(4_000), make(16_000)
    t_small = _seconds(lambda: markdown_to_text(small))
    t_large = _seconds(lambda: markdown_to_text(large))
    assert t_large < 8 * t_small + 0.05, (t_small, t_large)


@pytest.mark.timeout(60)
def test_markdown_conversion_of_large_pathological_input_is_quick() -> None:
    """Sizes that took minutes to hours before session 18 (200,000 spaces: ~25 min)."""
    for text in ("제목\n" + " " * 200_000 + "x", "[" * 100_000, "![" * 100_000, "<!--" * 50_000):
        assert _seconds(lambda t=text: documents_from_text(t, kind="markdown")) < 5.0  # ~0.05 s now


_OLD_PATTERNS = {  # before session 18, with their replacements
    "_COMMENT": (re.compile(r"<!--.*?-->", re.S), ""),
    "_TOC_LINE": (re.compile(r"^[ \t]*[-*+][ \t]*\[.*\]\(#[^)]*\)[ \t]*$", re.M), ""),
    "_TABLE_RULE": (
        re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$", re.M),
        "",
    ),
    "_IMAGE": (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    "_LINK": (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),
}


def _new_replacement(name: str) -> Any:
    if name in ("_COMMENT", "_TOC_LINE"):
        return markdown._drop_if(1)
    return markdown._unwrap if name in ("_IMAGE", "_LINK") else ""


@pytest.mark.parametrize(
    "md",
    [
        "[a [b](c) d](e) [f]g [h](i",
        "![x](y ![z](w) [v](u) ![open",
        "[open [a](b",
        "<!-- a --> b <!-- c",
        "<!-->a--> <!---->",
        "- [목차](#목차)\n- [a](#b\nc)\n- [x](#y) z\n|-|\n| a | - |\n  |:--|--:|  \n",
        "  | \t \n|\n-|-\n- | -\n:-:|\n",
        "- [a](#b)](#c)\n- [a](#b) [c](#d)\n- [x](y)](#z)\n* [a](#b\n- [c](#d)\n",
        "- [a](#b\n+ [)](#c)\n- [d](#e\nf\n* [g](#h) i)\n- [j](#k)\n",
    ],
)
@pytest.mark.parametrize("name", list(_OLD_PATTERNS))
def test_rewritten_patterns_change_the_text_as_the_old_ones_did(name: str, md: str) -> None:
    """Each rewritten (linear) pattern removes and keeps exactly what the old one did, on inputs
    where a link, comment, TOC line or table rule is cut short, nested or runs over lines."""
    old, old_repl = _OLD_PATTERNS[name]
    new = getattr(markdown, name)
    assert new.sub(_new_replacement(name), md) == old.sub(old_repl, md)


@pytest.mark.parametrize(
    ("ref", "char"),
    [
        ("&#" + "9" * 5000 + ";", "\ufffd"),  # html.unescape's int() refused > 4,300 digits: a 500
        ("&#" + "9" * 5000, "\ufffd"),
        ("&#" + "0" * 5000 + "65;", "A"),  # leading zeros do not make it large
        ("&#00000000;", "\ufffd"),  # as html.unescape: NUL is U+FFFD
        ("&#00000044032;", "가"),
        ("&#11141120;", "\ufffd"),  # past U+10FFFF, 8 digits
        ("&#x" + "f" * 5000 + ";", "\ufffd"),
    ],
)
def test_long_numeric_character_references_convert_as_html_does(ref: str, char: str) -> None:
    assert markdown_to_text(f"가 {ref} 나").text == f"가 {char} 나"


def test_deeply_nested_json_lines_are_an_ingest_error() -> None:
    """json.loads raises RecursionError, not JSONDecodeError: a traceback (500) before session 18."""
    with pytest.raises(IngestError, match="input:2: JSON nested too deeply"):
        documents_from_text('"문서"\n' + "[" * 100_000, kind="jsonl")


def test_a_json_lines_title_has_the_api_title_limit() -> None:
    ok = json.dumps({"text": "토기", "title": "가" * 500})
    assert documents_from_text(ok, kind="jsonl")[0].title == "가" * 500
    long = json.dumps({"text": "토기", "title": "가" * 501})
    with pytest.raises(IngestError, match="input:2: title has 501 characters; the limit is 500"):
        documents_from_text(ok + "\n" + long, kind="jsonl")


@pytest.mark.parametrize(
    "csv_text",
    [
        "a" * 140_000 + ",1\n",
        '토기,1\n"' + "a" * 140_000 + ",1\n",  # a quote never closed runs into the limit too
    ],
)
def test_a_csv_field_over_the_csv_limit_is_an_ingest_error(csv_text: str) -> None:
    """csv.Error is not a ValueError: it escaped as a 500 (and a CLI traceback) before session 18."""
    with pytest.raises(IngestError, match=r"line [12]: a field is longer than 131,072 characters"):
        parse_dictionary_csv(csv_text)


@pytest.mark.parametrize("weights", [{"   ": 1.0}, {"\u0000": 1.0}, {" ": 1.0, "\t": 2.0}])
def test_json_weights_without_a_word_are_refused_as_a_csv_is(weights: dict[str, float]) -> None:
    from hanseek.keywords.ingest import dictionary_weights

    with pytest.raises(IngestError, match="no words"):
        dictionary_weights(weights)


def test_json_weights_are_keyed_by_term() -> None:
    from hanseek.keywords.ingest import dictionary_weights

    assert dictionary_weights({}) == {}  # the explicit way to empty a dictionary
    assert dictionary_weights({"빗살무늬 토기": 3, "  ": 1, "OSI": 1.5}) == {"빗살무늬토기": 3, "osi": 1.5}
    with pytest.raises(IngestError, match=">= 0"):
        dictionary_weights({"토기": -1})


def test_documents_over_max_documents_are_refused_before_converting() -> None:
    """A million headings were converted one section at a time (13 s for 4 MB) before the API counted them."""
    from hanseek.keywords.ingest import TooManyDocuments

    calls = 0
    real = ingest.markdown_to_text

    def counting(md: str, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(md, **kw)

    content = "# 제목\n본문\n" * 10
    assert len(documents_from_text(content, kind="markdown", max_documents=10)) == 10
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ingest, "markdown_to_text", counting)
        with pytest.raises(TooManyDocuments):
            documents_from_text("# 제목\n본문\n" * 100_000, kind="markdown", max_documents=9)
    assert calls == 0
    lines = "\n".join(json.dumps({"text": f"문서 {i}"}) for i in range(5)) + "\n[oops"
    with pytest.raises(TooManyDocuments):  # counted as read: the broken last line is not reached
        documents_from_text(lines, kind="jsonl", max_documents=4)
    with pytest.raises(TooManyDocuments):
        documents_from_text("가\n\n나\n\n다", kind="text", split=Split.PARAGRAPH, max_documents=2)
