// /images page: text search, search by example (upload, drop or paste), add images, find similar.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const MAX_QUERY_CHARS = 1000;
  const MAX_K = 200;
  const results = $("results");
  const status = $("status");
  const searches = hanseekApi.sequence();  // only the newest search shows its results

  const setStatus = (text, isError = false) => {
    status.textContent = text;
    status.classList.toggle("error", isError);
  };

  function commonParams() {
    const p = new URLSearchParams();
    p.set("k", $("k").value || "12");
    const tags = tagList();
    if (tags.length) p.append("tag", tags.join(","));
    return p;
  }

  // Cards show tags as "#tag": the filter takes them either way.
  function tagList() {
    return $("tag-filter").value.split(",").map((t) => t.trim().replace(/^#+/, "")).filter(Boolean);
  }

  // The query as the server measures it (hanseekApi.visible), counted in code points. A string's
  // length counts UTF-16 units: an emoji is two, and Korean typed decomposed (NFD) two or three a syllable.
  const meant = (text) => [...hanseekApi.visible(text)];

  // The search refused (below) where "Results" is not a count the server takes; true if it was.
  // Checked here: the server's refusal names its parameter ("k"), not the field.
  function refusedResults() {
    const raw = $("k").value.trim();
    if (!raw) return false;  // the default
    const k = Number(raw);
    if (Number.isInteger(k) && k >= 1 && k <= MAX_K) return false;
    refuse(`Results must be a whole number from 1 to ${MAX_K}.`);
    return true;
  }

  // The same for a tag filter past the server's length limit.
  function refusedTagFilter() {
    const tooLong = $("tag-filter").value.length > MAX_QUERY_CHARS;
    if (tooLong) refuse(`The tag filter is too long (the limit is ${MAX_QUERY_CHARS} characters).`);
    return tooLong;
  }

  // A search the page refuses before sending: its message, and nothing from before under it (the
  // cards and the address would pass for an answer to what was typed).
  function refuse(message) {
    searches.next();  // an answer still on its way belongs to the search replaced
    browsing = null;
    more.hidden = true;
    hidePreview();
    clearResults();
    hanseekApi.keepUrl("");
    setStatus(message, true);
  }

  function clearResults() {
    results.replaceChildren();
    for (const u of thumbUrls) URL.revokeObjectURL(u);
    thumbUrls = [];
  }

  // " tagged #a #b" when the tag filter narrows the search: a search that finds nothing says so,
  // instead of seeming to say the collection has nothing like the query.
  function taggedText(tags) {
    return tags.length ? ` tagged ${tags.map((t) => `#${t}`).join(" ")}` : "";
  }

  // A search ranks the collection and returns its best k: the count is of those, not of "results"
  // that all match (the 12th best match for "cat" may well be a dog).
  function render(data, what, tags) {
    clearResults();
    if (!data.results.length) {
      setStatus(tags.length ? `No images${taggedText(tags)} found for ${what}.` : `No images found for ${what}.`);
      return;
    }
    const among = tags.length ? ` among the images${taggedText(tags)}` : "";
    const best = data.count === 1 ? "The best match" : `The ${data.count} best matches`;
    setStatus(`${best} for ${what}${among}.`);
    for (const hit of data.results) results.append(card(hit.image, hit));
  }

  // One result card; `hit` (score and the space that matched) is absent when browsing.
  function card(img, hit) {
    const li = document.createElement("li");
    li.className = "img-card";
    li.dataset.imageId = String(img.id);
    const link = document.createElement("a");
    link.href = img.file_url;
    link.target = "_blank";
    link.rel = "noopener";
    if (hanseekApi.readsNeedKey) {
      link.addEventListener("click", (ev) => {
        ev.preventDefault();
        keyedBlobUrl(img.file_url).then((src) => window.open(src, "_blank", "noopener"))
          .catch((err) => setStatus(err.message, true));
      });
    }
    const thumb = document.createElement("img");
    thumb.alt = img.caption || img.source_name || `image ${img.id}`;
    thumb.loading = "lazy";
    setThumb(thumb, img.thumbnail_url);
    link.append(thumb);
    const meta = document.createElement("div");
    meta.className = "img-meta";
    const score = document.createElement("span");
    score.className = "img-score";
    const source = document.createElement("span");
    source.className = "img-source";
    if (hit) {
      score.textContent = hit.score.toFixed(3);
      score.title = `matched by ${hit.source}`;
      source.textContent = hit.source;
    } else {
      source.textContent = `added ${img.created_at.slice(0, 10)}`;
      source.title = img.created_at;
    }
    const caption = document.createElement("p");
    caption.className = "img-caption";
    const labels = img.auto_labels.map((l) => l.label).slice(0, 3).join(", ");
    caption.textContent = img.caption || (labels ? `looks like: ${labels}` : img.source_name || "");
    const tags = document.createElement("p");
    tags.className = "img-tags";
    tags.textContent = img.tags.map((t) => `#${t}`).join(" ");
    const similar = document.createElement("button");
    similar.type = "button";
    similar.className = "img-similar";
    similar.textContent = "Find similar";
    similar.setAttribute("aria-label", `Find images similar to ${thumb.alt}`);
    similar.addEventListener("click", () => findSimilar(img.id, img.caption || img.source_name || `image ${img.id}`, true));
    meta.append(score, source, caption, tags, similar);
    li.append(link, meta);
    return li;
  }

  // A request refused for want of the API key (a link opened in a new tab under protect_reads) is
  // sent again, with the key, once it is typed.
  let refused = null;
  hanseekApi.onChange(() => { const again = refused; refused = null; if (again) again(); });

  // Sends one request (`request()`: a search, or a page of the collection) and hands its answer to
  // `show` (by default: search results for `what`), unless a newer request was started meanwhile.
  // A failed request clears the cards (an earlier search's would pass for this one's), except a
  // further page of the collection (`nextPage`): the pages shown stay, and "More" can be tried again.
  // The example image's preview belongs to a search by example (`example`): any other search hides
  // it, and so does the example's own failure.
  async function run(request, what, show = null, pending = "Searching…", nextPage = false, example = false) {
    const tags = tagList();  // as sent: the filter may be edited while the answer is on its way
    show = show || ((body) => render(body, what, tags));
    const again = () => run(request, what, show, pending, nextPage, example);
    const ticket = searches.next();
    if (!example) hidePreview();
    more.hidden = true;  // a page of the collection says again whether more remain
    setStatus(pending);
    const failed = (message) => {
      if (nextPage) more.hidden = false;
      else clearResults();
      if (example) hidePreview();
      setStatus(message, true);
    };
    try {
      const resp = await request();
      const body = resp.ok ? await resp.json() : await hanseekApi.problem(resp);
      if (!searches.isLatest(ticket)) return;  // a newer search was started meanwhile
      refused = resp.status === 401 ? again : null;
      if (!resp.ok) {
        failed(body);
        return;
      }
      show(body);
    } catch (err) {
      if (!searches.isLatest(ticket)) return;
      failed(hanseekApi.unreachable(err));
    }
  }

  // Reload, Back and a shared link come back to what is on screen: the search's parameters, or
  // none for a search by an example file (which a URL cannot hold).
  function keepInUrl(params) {
    const here = new URLSearchParams(params);
    if (Object.keys(params).length) {
      if ($("tag-filter").value.trim()) here.set("tag", $("tag-filter").value.trim());
      if ($("k").value && $("k").value !== $("k").defaultValue) here.set("k", $("k").value);
    }
    hanseekApi.keepUrl(here);
  }

  // Browsing: the collection newest first, `k` images a page (GET /images/list, limit and the
  // previous page's `next_after`), with the tag filter. "More" asks for the page below the last card
  // shown, so images deleted meanwhile do not make it skip one.
  const more = $("more");
  let browsing = null;  // {tags, limit, after: the next page's cursor, shown: ids of the cards shown}

  function browsePage(after) {
    const p = new URLSearchParams({ limit: String(browsing.limit) });
    if (after) p.set("after", after);
    if (browsing.tags.length) p.set("tag", browsing.tags.join(","));
    const state = browsing;
    run(() => fetch(`/images/list?${p}`, { headers: headers() }), "", (body) => {
      if (!after) {
        clearResults();
        state.shown = new Set();
      }
      for (const img of body.results) {
        if (state.shown.has(img.id)) continue;
        state.shown.add(img.id);
        results.append(card(img, null));
      }
      state.after = body.next_after;
      const which = taggedText(state.tags);
      if (!body.total) setStatus(`No images${which} in the collection.`);
      else setStatus(`${state.shown.size} of ${body.total} image(s)${which}, newest first.`);
      more.hidden = !body.next_after;  // `shown` still counts cards deleted since: no use against `total`
    }, "Loading…", Boolean(after));
  }

  function browse() {
    if (refusedTagFilter()) return;
    const limit = Math.min(Math.max(parseInt($("k").value, 10) || 12, 1), 200);
    browsing = { tags: tagList(), limit, after: null, shown: new Set() };
    keepInUrl({ browse: "1" });
    browsePage(null);
  }

  $("browse").addEventListener("click", browse);
  more.addEventListener("click", () => { if (browsing && browsing.after) browsePage(browsing.after); });

  const headers = () => hanseekApi.headers(false);

  // An <img src> or a link cannot send the key: under protect_reads the thumbnail is fetched with it
  // and shown from a blob URL, and the full image opens the same way.
  let thumbUrls = [];
  async function keyedBlobUrl(url) {
    const resp = await fetch(url, { headers: headers() });
    if (!resp.ok) throw new Error(await hanseekApi.problem(resp));
    return URL.createObjectURL(await resp.blob());
  }

  function setThumb(img, url) {
    if (!hanseekApi.readsNeedKey) { img.src = url; return; }
    keyedBlobUrl(url).then((src) => { thumbUrls.push(src); img.src = src; }).catch((err) => { img.alt = `${img.alt} (${err.message})`; });
  }

  $("text-search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("q").value.trim();
    const length = meant(q).length;
    if (!length) {
      refuse("Type what you are looking for.");
      return;
    }
    // The server's limits, checked here too: a query far past them would not even fit in a URL,
    // and the browser would get a bare "400" from the HTTP layer instead of a message.
    if (length > MAX_QUERY_CHARS) {
      refuse(`The description is too long: ${length} characters (the limit is ${MAX_QUERY_CHARS}).`);
      return;
    }
    if (refusedTagFilter()) return;
    if (refusedResults()) return;
    const p = commonParams();
    p.set("q", q);
    keepInUrl({ q });
    run(() => fetch(`/images/search?${p}`, { headers: headers() }), `“${q}”`);
  });
  // `fromCard`: the button clicked goes with the cards it was on; the keyboard's focus moves to the
  // status line (which names the search, then its answer) instead of falling back to the page.
  function findSimilar(id, name, fromCard = false) {
    if (refusedResults()) {
      if (fromCard) status.focus({ preventScroll: true });
      return;
    }
    const p = commonParams();
    keepInUrl({ similar: String(id) });
    run(() => fetch(`/images/${id}/similar?${p}`, { headers: headers() }), `“${name}”`);
    if (fromCard) status.focus({ preventScroll: true });
    window.scrollTo({ top: 0, behavior: "smooth" });
  }

  // The search a URL names (opening a link, reload, Back or Forward) is run again; a URL naming
  // none (the page as opened, or a search by example) shows no results.
  function restore(given) {
    $("tag-filter").value = given.get("tag") || "";
    $("k").value = /^[0-9]+$/.test(given.get("k") || "") ? given.get("k") : $("k").defaultValue;
    $("q").value = given.get("q") || "";
    const similar = given.get("similar") || "";
    if (given.get("q")) {
      $("text-search").requestSubmit();
    } else if (given.get("browse") === "1") {
      browse();
    } else if (/^[0-9]+$/.test(similar)) {
      findSimilar(Number(similar), `image #${similar}`);
    } else {
      searches.next();  // an answer still on its way belongs to the entry left
      browsing = null;
      more.hidden = true;
      hidePreview();
      clearResults();
      setStatus("");
    }
  }
  hanseekApi.inPlace(() => restore(new URLSearchParams(location.search)));
  hanseekApi.onHistory(restore);

  function hidePreview() {
    const preview = $("example-preview");
    if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
    preview.removeAttribute("src");
    preview.hidden = true;
  }

  function searchByExample(file) {
    if (!file) return;
    if (refusedResults()) return;
    hidePreview();  // the previous example's
    const preview = $("example-preview");
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    const form = new FormData();
    form.append("file", file, file.name || "pasted-image");
    const p = commonParams();
    keepInUrl({});
    run(() => fetch(`/images/search?${p}`, { method: "POST", body: form, headers: headers() }),
        file.name ? `“${file.name}”` : "the pasted image", null, "Searching…", false, true);
  }

  $("example").addEventListener("change", (ev) => {
    searchByExample(ev.target.files[0]);
    ev.target.value = "";  // choosing the same file again is a new search
  });
  const drop = $("drop");
  // Keyboard: Enter or Space on the drop zone opens the file chooser.
  drop.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      $("example").click();
    }
  });
  // A file dropped beside the zone would make the browser open it and leave the page.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (ev) => {
      const fileInput = ev.target instanceof HTMLInputElement && ev.target.type === "file";
      if (!drop.contains(ev.target) && !fileInput) ev.preventDefault();
    });
  }
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    searchByExample(ev.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (ev) => {
    const item = [...(ev.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
    if (item) searchByExample(item.getAsFile());
  });

  const addButton = $("add-form").querySelector("button[type=submit], button:not([type])");
  $("add-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    // A second click while the files upload would send them again (the second copy: "duplicate").
    if (addButton.disabled) return;
    const files = $("add-files").files;
    const list = $("add-results");
    list.replaceChildren();
    if (!files.length) {
      setStatus("Choose one or more images to add.", true);
      return;
    }
    const form = new FormData();
    for (const f of files) form.append("files", f, f.name);
    if ($("add-caption").value.trim()) form.append("caption", $("add-caption").value.trim());
    if ($("add-tags").value.trim()) form.append("tags", $("add-tags").value.trim());
    setStatus("Uploading…");
    addButton.disabled = true;
    try {
      const resp = await fetch("/images", { method: "POST", body: form, headers: headers() });
      const body = await resp.json();
      for (const r of body.results || []) {
        const li = document.createElement("li");
        li.className = `img-add-${r.status}`;
        li.textContent = `${r.filename || `file ${r.index + 1}`}: ${r.status}` +
          (r.id ? ` (#${r.id})` : "") + (r.message ? ` — ${r.message}` : "");
        list.append(li);
      }
      if (resp.status === 401) setStatus(hanseekApi.KEY_MESSAGE, true);
      else if (!resp.ok) setStatus(body.detail || `HTTP ${resp.status}`, true);
      else setStatus(`${body.added} added, ${body.duplicates} duplicate(s), ${body.rejected} rejected.`);
    } catch (err) {
      setStatus(hanseekApi.unreachable(err), true);
    } finally {
      addButton.disabled = false;
    }
  });
})();
