import json
import re
from pathlib import Path

import pytest

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
