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
  // A key is printable ASCII. One typed with the Korean input method on ("ㄴㄷㄴ믇" for "sesame")
  // cannot go in a header at all: fetch() throws before sending, so every request of every page,
  // reads that need no key included, would fail for as long as the tab keeps the key.
  const usable = (key) => /^[\x20-\x7E]*$/.test(key);
  const KEY_CHARS_MESSAGE =
    "A key holds only Latin letters, digits and symbols — was the Korean keyboard on? " +
    "Switch it off and type the key again.";
  let note = null;
  const showKeyProblem = (text) => {
    if (!input) return;
    if (!note) {
      note = document.createElement("span");
      note.id = "api-key-error";
      note.className = "api-key-error";
      note.setAttribute("role", "alert");
      input.closest("label").after(note);
      input.setAttribute("aria-describedby", note.id);
    }
    note.textContent = text;
    note.hidden = !text;
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  };
  if (input) {
    const stored = sessionStorage.getItem(STORE) || "";
    // Stored by an older page before keys were checked: dropped, or it would break every request.
    if (!usable(stored)) sessionStorage.removeItem(STORE);
    input.value = usable(stored) ? stored : "";
    input.addEventListener("change", () => {
      const key = input.value.trim();
      if (!usable(key)) {
        sessionStorage.removeItem(STORE);
        showKeyProblem(KEY_CHARS_MESSAGE);
        return;
      }
      showKeyProblem("");
      sessionStorage.setItem(STORE, key);
      for (const fn of listeners) fn();
    });
  }
  const value = () => {
    const key = input ? input.value.trim() : "";
    return usable(key) ? key : "";
  };
  // History: what the user asks for (a search, a pick) adds an entry, so Back returns to what was on
  // screen before; what a page does by itself (the search of the URL it was opened with, or the one
  // Back came to) only rewrites the entry it is on.
  let restoring = false;
  const inPlace = (fn) => {
    const before = restoring;
    restoring = true;
    try { return fn(); } finally { restoring = before; }
  };
  // The characters the server drops before it measures or reads a text
  // (hanseek.text.normalize.is_dropped): zero-width ones, soft hyphens, lone surrogates and controls
  // other than line breaks and tabs.
  const DROPPED = /[\u200b\u200c\u200d\u2060\ufeff\u00ad\ud800-\udfff]|(?![\n\t\r\v\f])\p{Cc}/gu;
  return {
    mode,
    // A text as the server reads it: NFC, without the characters it drops, trimmed.
    visible: (text) => text.normalize("NFC").replace(DROPPED, "").trim(),
    // Whether plain GETs (an <img src>, a link) are refused without the key.
    readsNeedKey: mode === "read",
    value,
    headers(json) {
      const h = json ? { "Content-Type": "application/json" } : {};
      if (value()) h["X-API-Key"] = value();
      return h;
    },
    onChange(fn) { listeners.push(fn); },
    // Puts `query` (URLSearchParams or a string) in the address bar: a new history entry, unless the
    // address is the same or the page is restoring a state (`inPlace`). Called before the request's
    // first await, so inside `inPlace` it is still in place.
    keepUrl(query) {
      const q = String(query);
      const url = q ? `${location.pathname}?${q}` : location.pathname;
      if (url === location.pathname + location.search) return;
      if (restoring) history.replaceState(null, "", url);
      else history.pushState(null, "", url);
    },
    inPlace,
    // Back and Forward: `fn(params)` puts the page back in the state of the entry's URL.
    onHistory(fn) {
      window.addEventListener("popstate", () => inPlace(() => fn(new URLSearchParams(location.search))));
    },
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
    // What a refused key (401: none typed, or a wrong one) means to someone on a page: the API's
    // own detail names HTTP headers, which a page user never sees.
    KEY_MESSAGE: "Type the API key in the field at the top — it is missing or wrong.",
    // The API answers problem+json: its detail, else its title; anything else, the status.
    async problem(resp) {
      if (resp.status === 401) return this.KEY_MESSAGE;
      try {
        const body = await resp.json();
        return body.detail || body.title || `HTTP ${resp.status}`;
      } catch {
        return `HTTP ${resp.status}`;
      }
    },
  };
})();
