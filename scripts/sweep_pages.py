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
                type_key(pg, self.key)
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

    def offline_case(
        self, page_path: str, name: str, act: Callable[[Page], None], message_ids: list[str]
    ) -> None:
        """`act` with the network cut just before its last step, so that the request itself fails."""

        def cut_then(pg: Page) -> None:
            pg.route("**/*", lambda route: route.abort("internetdisconnected"))
            act(pg)
            pg.wait_for_timeout(1000)

        try:
            self.case(page_path, name, cut_then, message_ids)
        finally:
            self.page.unroute("**/*")


def submit(pg: Page, field: str, text: str, button: str) -> None:
    pg.fill(field, text)
    pg.click(button)


def set_value(pg: Page, element_id: str, value: str) -> None:
    """Set a value the way a script or a tampered page would, past what typing allows."""
    pg.evaluate("([i, v]) => { document.getElementById(i).value = v; }", [element_id, value])


def type_key(pg: Page, value: str) -> None:
    pg.fill("#api-key", value)
    pg.press("#api-key", "Enter")  # commits the field: the "change" event


def sweep(base: str, key: str | None, verbose: bool = False) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hanseek-pages-"))
    files = _files(tmp)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(locale="ko-KR")
        page = context.new_page()
        page.set_default_timeout(60_000)
        s = Sweep(page, base, key)

        cloze_text = "구석기 시대 사람들은 뗀석기로 사냥을 하였다."
        pages: list[tuple[str, list[str], Callable[[Page, str], None]]] = [
            # page, its message elements, how to submit a text there
            (
                "/cloze",
                ["cloze-status", "cloze-error"],
                lambda pg, t: submit(pg, "#cloze-text", t, "#cloze-submit"),
            ),
            (
                "/sentiment",
                ["sentiment-status", "sentiment-error", "sentiment-rows"],
                lambda pg, t: submit(pg, "#sentiment-text", t, "#sentiment-submit"),
            ),
            ("/images", ["status"], lambda pg, t: submit(pg, "#q", t, "#text-search button")),
        ]
        for path, msgs, send in pages:
            for i, text in enumerate(HOSTILE_TEXT):
                s.case(path, f"text #{i}", lambda pg, t=text, send=send: send(pg, t), msgs)
            s.offline_case(path, "offline submit", lambda pg, send=send: send(pg, "재밌다 고양이"), msgs)
        cloze_msgs, sent_msgs, img_msgs = (msgs for _, msgs, _ in pages)

        # /cloze
        for num in HOSTILE_NUMBERS:
            s.case(
                "/cloze",
                f"ratio {num!r}",
                lambda pg, n=num: (
                    set_value(pg, "cloze-ratio", n),
                    submit(pg, "#cloze-text", cloze_text, "#cloze-submit"),
                ),
                cloze_msgs,
            )
        for f in files:
            for button in ("#cloze-ocr", "#cloze-submit"):
                s.case(
                    "/cloze",
                    f"photo {f.name} then {button}",
                    lambda pg, f=f, b=button: (pg.set_input_files("#cloze-image", str(f)), pg.click(b)),
                    cloze_msgs,
                )
        s.case("/cloze", "ocr without a photo", lambda pg: pg.click("#cloze-ocr"), cloze_msgs)
        s.offline_case(
            "/cloze",
            "offline ocr",
            lambda pg: (pg.set_input_files("#cloze-image", str(files[1])), pg.click("#cloze-ocr")),
            cloze_msgs,
        )

        # /sentiment
        # Pasted, not typed: Playwright's fill of 5000 lines into a textarea can outlast any timeout.
        many = "\n".join(["좋다"] * 5000)
        s.case(
            "/sentiment",
            "many lines",
            lambda pg: (set_value(pg, "sentiment-text", many), pg.click("#sentiment-submit")),
            sent_msgs,
        )

        # /images
        for num in HOSTILE_NUMBERS:
            s.case(
                "/images",
                f"k {num!r}",
                lambda pg, n=num: (set_value(pg, "k", n), submit(pg, "#q", "고양이", "#text-search button")),
                img_msgs,
            )
        for i, text in enumerate(HOSTILE_TEXT[2:], start=2):
            s.case(
                "/images",
                f"tag #{i}",
                lambda pg, t=text: (
                    pg.fill("#tag-filter", t),
                    submit(pg, "#q", "cat", "#text-search button"),
                ),
                img_msgs,
            )

        def add(pg: Page, names: list[Path], caption: str = "", tags: str = "") -> None:
            pg.click("#add-panel summary")
            pg.set_input_files("#add-files", [str(n) for n in names])
            pg.fill("#add-caption", caption)
            pg.fill("#add-tags", tags)
            pg.click("#add-form button[type=submit]")

        for f in files:
            s.case(
                "/images",
                f"example {f.name}",
                lambda pg, f=f: pg.set_input_files("#example", str(f)),
                img_msgs,
            )
            s.case(
                "/images",
                f"add {f.name}",
                lambda pg, f=f: add(pg, [f, files[0]], HOSTILE_TEXT[2], "<b>, ,,\x00"),
                img_msgs,
            )
        s.case("/images", "add nothing", lambda pg: add(pg, []), img_msgs)
        s.offline_case("/images", "offline add", lambda pg: add(pg, [files[1]]), img_msgs)

        # /feed
        feed_msgs = ["feed-status", "feed-error"]
        s.case("/feed", "load", lambda pg: None, feed_msgs)
        s.case("/feed?user=%3Cscript%3E", "unknown user in the URL", lambda pg: None, feed_msgs)
        for select, options in [
            ("#feed-days", ["7", "30", "180", "all"]),
            ("#feed-path", ["auto", "exact", "exact-sql", "approx"]),
        ]:
            for o in options:
                s.case(
                    "/feed", f"{select} {o}", lambda pg, sel=select, o=o: pg.select_option(sel, o), feed_msgs
                )
        for bad in ["-1", "abc", "<b>"]:
            s.case(
                "/feed",
                f"tampered days {bad}",
                lambda pg, b=bad: (
                    pg.evaluate("(v) => document.getElementById('feed-days').add(new Option(v, v))", b),
                    set_value(pg, "feed-days", b),
                    pg.click("#feed-refresh"),
                ),
                feed_msgs,
            )
        like, read = "#col-latest button.like", "#col-latest button.read"
        if key:
            s.case(
                "/feed", "wrong key then like", lambda pg: (type_key(pg, "wrong"), pg.click(like)), feed_msgs
            )
            s.case("/feed", "key", lambda pg: type_key(pg, key), feed_msgs)
        s.case("/feed", "read", lambda pg: pg.click(read), feed_msgs)
        s.offline_case("/feed", "offline like", lambda pg: pg.click(like), feed_msgs)
        s.offline_case("/feed", "offline refresh", lambda pg: pg.click("#feed-refresh"), feed_msgs)
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
