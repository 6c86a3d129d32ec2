// What every page's requests share: the API key field in the page header, and the message of a
// refused request. The server says what it needs in <body data-key-mode>: "none" (no key
// configured), "write" (writes need it) or "read" (everything does, HANSEEK_PROTECT_READS). The key
// lives in sessionStorage: it follows the tab from page to page and is gone when the tab closes.
"use strict";
window.hanseekApi = (() => {
  const STORE = "hanseek-key";
  const mode = document.body.dataset.keyMode || "none";
  const input = document.getElementById("api-key");
  const listeners = [];
  if (input) {
    input.value = sessionStorage.getItem(STORE) || "";
    input.addEventListener("change", () => {
      sessionStorage.setItem(STORE, input.value.trim());
      for (const fn of listeners) fn();
    });
  }
  const value = () => (input ? input.value.trim() : "");
  return {
    mode,
    // Whether plain GETs (an <img src>, a link) are refused without the key.
    readsNeedKey: mode === "read",
    value,
    headers(json) {
      const h = json ? { "Content-Type": "application/json" } : {};
      if (value()) h["X-API-Key"] = value();
      return h;
    },
    onChange(fn) { listeners.push(fn); },
    // Only the newest of overlapping requests may show its answer: `const t = seq.next()` before
    // sending, then `if (!seq.isLatest(t)) return;` after each await. Otherwise a slow first answer
    // that arrives last would replace the second (another user's feed, another query's results).
    sequence() {
      let last = 0;
      return { next: () => ++last, isLatest: (t) => t === last };
    },
    // A fetch that never reached the server (down, network gone): the browser's own words say little.
    unreachable(e) {
      return `Could not reach the server (${e.message}). Is it running?`;
    },
    // The API answers problem+json: its detail, else its title; anything else, the status.
    async problem(resp) {
      try {
        const body = await resp.json();
        return body.detail || body.title || `HTTP ${resp.status}`;
      } catch {
        return `HTTP ${resp.status}`;
      }
    },
  };
})();
