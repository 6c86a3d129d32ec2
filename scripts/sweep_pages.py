"""Drive every web page in headless Chromium with hostile input and report what broke.

Usage: python scripts/sweep_pages.py http://127.0.0.1:8765 [--key KEY] [--verbose]

Point it at a scratch server (`make run PORT=8765`): it adds images and events. For each page it
types junk (empty, whitespace, huge, control characters, markup, odd numbers), uploads junk files,
and replays the same actions with the network cut. A case fails when the page throws (an uncaught
exception or an unhandled promise rejection), when it is still showing a progress message ("…")
after the request settled, or when it shows no message at all. Prints one JSON summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HOSTILE_TEXT = [
    "",
    "   \n\t  ",
    "<img src=x onerror=alert(1)>",
    "\x00\x01\x02 제어 문자",
    "가" * 200_000,
    "🙂" * 5000,
    "\u202e뒤집힌 글\u202c",
    "a\r\nb\r\n\r\nc",
    "'\"\\;--",
]
SETTLE_MS = 60_000
HOSTILE_NUMBERS = ["0", "-1", "1e9", "NaN", "", "3.7", "99999999999999999999"]


def _files(tmp: Path) -> list[Path]:
    out = []
    for name, data in [
        ("empty.png", b""),
        ("text.jpg", "이미지가 아닙니다".encode()),
        ("truncated.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"),
        ("big.bin", b"\xff" * (3 * 1024 * 1024)),
        ("<b>name<i>.png", b"GIF89a"),
    ]:
        p = tmp / name
        p.write_bytes(data)
        out.append(p)
    return out


class Sweep:
    def __init__(self, page: Page, base: str, key: str | None) -> None:
        self.page = page
        self.base = base
        self.key = key
        self.errors: list[str] = []
        self.failures: list[dict[str, Any]] = []
        self.cases = 0
        self.seen: list[dict[str, Any]] = []
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"), d.dismiss()))

    def case(self, page_path: str, name: str, act: Callable[[Page], None], message_ids: list[str]) -> None:
        """Run `act` on a fresh load of the page, wait for requests to settle, then judge."""
        self.cases += 1
        self.errors.clear()
        pg = self.page
        try:
            pg.goto(self.base + page_path, wait_until="networkidle")
            if self.key:
                pg.fill("#api-key", self.key)
                pg.press("#api-key", "Enter")
                pg.wait_for_load_state("networkidle")
            act(pg)
            # Give the request time to settle: a progress message ("…") must give way to an answer.
            pg.wait_for_timeout(300)
            ids = json.dumps(message_ids)
            with contextlib.suppress(PlaywrightError):  # still "…" after the wait: judged below as stuck
                pg.wait_for_function(
                    f"() => !{ids}.some((i) => document.getElementById(i).innerText.trim().endsWith('…'))",
                    timeout=SETTLE_MS,
                )
        except Exception as exc:  # the sweep records the driver's failure as the case's failure
            self.failures.append({"page": page_path, "case": name, "problem": f"driver: {exc}"[:300]})
            return
        shown = [t.strip() for t in (pg.locator(f"#{i}").inner_text() for i in message_ids) if t.strip()]
        # The browser's own form validation (min/max/step) is a message too, shown as a bubble.
        invalid = pg.evaluate(
            "() => [...document.querySelectorAll(':invalid')].map((e) => e.validationMessage)"
        )
        shown += [f"(form) {m}" for m in invalid if m]
        problems = list(self.errors)
        if any(t.endswith("…") for t in shown):
            problems.append(f"stuck: {shown}")
        if not shown:
            problems.append("no message shown")
        self.seen.append({"page": page_path, "case": name, "shown": [t[:160] for t in shown]})
        if problems:
            self.failures.append({"page": page_path, "case": name, "problem": problems, "shown": shown})

    def offline(self, on: bool) -> None:
        self.page.context.set_offline(on)


def sweep(base: str, key: str | None, verbose: bool = False) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hanseek-pages-"))
    files = _files(tmp)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(locale="ko-KR")
        page = context.new_page()
        page.set_default_timeout(60_000)
        s = Sweep(page, base, key)

        # /cloze
        cloze_msgs = ["cloze-status", "cloze-error"]
        for i, text in enumerate(HOSTILE_TEXT):
            s.case(
                "/cloze",
                f"text #{i}",
                lambda pg, t=text: (pg.fill("#cloze-text", t), pg.click("#cloze-submit")),
                cloze_msgs,
            )
        for num in HOSTILE_NUMBERS:
            s.case(
                "/cloze",
                f"ratio {num!r}",
                lambda pg, n=num: (
                    pg.fill("#cloze-text", "구석기 시대 사람들은 뗀석기로 사냥을 하였다."),
                    pg.evaluate("(v) => { document.getElementById('cloze-ratio').value = v; }", n),
                    pg.click("#cloze-submit"),
                ),
                cloze_msgs,
            )
        for f in files:
            s.case(
                "/cloze",
                f"ocr {f.name}",
                lambda pg, f=f: (pg.set_input_files("#cloze-image", str(f)), pg.click("#cloze-ocr")),
                cloze_msgs,
            )
            s.case(
                "/cloze",
                f"photo submit {f.name}",
                lambda pg, f=f: (pg.set_input_files("#cloze-image", str(f)), pg.click("#cloze-submit")),
                cloze_msgs,
            )
        s.case("/cloze", "ocr without a photo", lambda pg: pg.click("#cloze-ocr"), cloze_msgs)

        def cloze_offline(pg: Page) -> None:
            pg.fill("#cloze-text", "구석기 시대 사람들은 뗀석기로 사냥을 하였다.")
            s.offline(True)
            pg.click("#cloze-submit")
            pg.wait_for_timeout(1000)

        s.case("/cloze", "offline submit", cloze_offline, cloze_msgs)
        s.offline(False)

        def cloze_ocr_offline(pg: Page) -> None:
            pg.set_input_files("#cloze-image", str(files[1]))
            s.offline(True)
            pg.click("#cloze-ocr")
            pg.wait_for_timeout(1000)

        s.case("/cloze", "offline ocr", cloze_ocr_offline, cloze_msgs)
        s.offline(False)

        # /sentiment
        sent_msgs = ["sentiment-status", "sentiment-error", "sentiment-rows"]
        for i, text in enumerate(HOSTILE_TEXT):
            s.case(
                "/sentiment",
                f"text #{i}",
                lambda pg, t=text: (pg.fill("#sentiment-text", t), pg.click("#sentiment-submit")),
                sent_msgs,
            )
        s.case(
            "/sentiment",
            "many lines",
            lambda pg: (
                pg.fill("#sentiment-text", "\n".join(["좋다"] * 5000)),
                pg.click("#sentiment-submit"),
            ),
            sent_msgs,
        )

        def sent_offline(pg: Page) -> None:
            pg.fill("#sentiment-text", "재밌다")
            s.offline(True)
            pg.click("#sentiment-submit")
            pg.wait_for_timeout(1000)

        s.case("/sentiment", "offline submit", sent_offline, sent_msgs)
        s.offline(False)

        # /images
        img_msgs = ["status"]
        for i, text in enumerate(HOSTILE_TEXT):
            s.case(
                "/images",
                f"query #{i}",
                lambda pg, t=text: (pg.fill("#q", t), pg.press("#q", "Enter")),
                img_msgs,
            )
        for num in HOSTILE_NUMBERS:
            s.case(
                "/images",
                f"k {num!r}",
                lambda pg, n=num: (
                    pg.fill("#q", "고양이"),
                    pg.evaluate("(v) => { document.getElementById('k').value = v; }", n),
                    pg.press("#q", "Enter"),
                ),
                img_msgs,
            )
        for i, text in enumerate(HOSTILE_TEXT[2:], start=2):
            s.case(
                "/images",
                f"tag #{i}",
                lambda pg, t=text: (pg.fill("#q", "cat"), pg.fill("#tag-filter", t), pg.press("#q", "Enter")),
                img_msgs,
            )
        for f in files:
            s.case(
                "/images",
                f"example {f.name}",
                lambda pg, f=f: pg.set_input_files("#example", str(f)),
                img_msgs,
            )

            def add(pg: Page, f: Path = f) -> None:
                pg.click("#add-panel summary")
                pg.set_input_files("#add-files", [str(f), str(files[0])])
                pg.fill("#add-caption", HOSTILE_TEXT[2])
                pg.fill("#add-tags", "<b>, ,,\x00")
                pg.click("#add-form button[type=submit]")

            s.case("/images", f"add {f.name}", add, img_msgs)
        s.case(
            "/images",
            "add nothing",
            lambda pg: (pg.click("#add-panel summary"), pg.click("#add-form button[type=submit]")),
            img_msgs,
        )

        def img_offline(pg: Page) -> None:
            pg.fill("#q", "고양이")
            s.offline(True)
            pg.press("#q", "Enter")
            pg.wait_for_timeout(1000)

        s.case("/images", "offline search", img_offline, img_msgs)
        s.offline(False)

        def img_add_offline(pg: Page) -> None:
            pg.click("#add-panel summary")
            pg.set_input_files("#add-files", str(files[1]))
            s.offline(True)
            pg.click("#add-form button[type=submit]")
            pg.wait_for_timeout(1000)

        s.case("/images", "offline add", img_add_offline, img_msgs)
        s.offline(False)

        # /feed
        feed_msgs = ["feed-status", "feed-error"]
        s.case("/feed", "load", lambda pg: None, feed_msgs)
        s.case("/feed?user=%3Cscript%3E", "unknown user in the URL", lambda pg: None, feed_msgs)
        for opt in ["7", "30", "180", "all"]:
            s.case("/feed", f"days {opt}", lambda pg, o=opt: pg.select_option("#feed-days", o), feed_msgs)
        for path in ["auto", "exact", "exact-sql", "approx"]:
            s.case("/feed", f"path {path}", lambda pg, o=path: pg.select_option("#feed-path", o), feed_msgs)
        for bad in ["-1", "abc", "<b>"]:
            s.case(
                "/feed",
                f"tampered days {bad}",
                lambda pg, b=bad: (
                    pg.evaluate(
                        "(v) => { const s = document.getElementById('feed-days');"
                        " s.add(new Option(v, v)); s.value = v; }",
                        b,
                    ),
                    pg.click("#feed-refresh"),
                ),
                feed_msgs,
            )

        def type_key(pg: Page, value: str) -> None:
            pg.fill("#api-key", value)
            pg.press("#api-key", "Enter")

        if key:
            s.case(
                "/feed",
                "wrong key then like",
                lambda pg: (type_key(pg, "wrong"), pg.locator("#col-latest button.like").first.click()),
                feed_msgs,
            )
            s.case("/feed", "key", lambda pg: type_key(pg, key), feed_msgs)
        s.case("/feed", "read", lambda pg: pg.locator("#col-latest button.read").first.click(), feed_msgs)

        def feed_offline(pg: Page) -> None:
            s.offline(True)
            pg.locator("#col-latest button.like").first.click()
            pg.wait_for_timeout(1000)

        s.case("/feed", "offline like", feed_offline, feed_msgs)
        s.offline(False)

        def feed_offline_refresh(pg: Page) -> None:
            s.offline(True)
            pg.click("#feed-refresh")
            pg.wait_for_timeout(1000)

        s.case("/feed", "offline refresh", feed_offline_refresh, feed_msgs)
        s.offline(False)
        browser.close()
    out: dict[str, Any] = {"cases": s.cases, "failures": s.failures}
    if verbose:
        out["seen"] = s.seen
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("--key", default=None, help="the server's API key, if it has one")
    ap.add_argument("--verbose", action="store_true", help="also list what every case showed")
    args = ap.parse_args()
    result = sweep(args.base.rstrip("/"), args.key, args.verbose)
    json.dump(result, sys.stdout, ensure_ascii=False, indent=1)
    print()
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
