// /feed page: a user's personalised feed next to latest and popular; read/like posts and refresh.
(function () {
  const $ = (id) => document.getElementById(id);
  // shownUser: whose feed the columns show (Read/Like record for them, whatever the picker says now).
  const state = { previous: new Set(), version: 0, shownUser: null, seq: hanseekApi.sequence() };
  const FILTERS = ["days", "method", "path"];

  const headers = (json) => hanseekApi.headers(json);

  async function getJSON(url) {
    let resp;
    try {
      resp = await fetch(url, { headers: headers(false) });
    } catch (e) {
      throw new Error(hanseekApi.unreachable(e));  // the network, not the API, said no
    }
    if (!resp.ok) throw new Error(await hanseekApi.problem(resp));
    return resp.json();
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A score means something only in the personal column: the re-ranker's score, or the cosine
  // similarity to what the user read. Latest and popular order by a timestamp (unix seconds) and a
  // decayed count of likes, which read as noise ("latest 1795528631.000"): those cards name the
  // source only, and their own columns nothing.
  function scoreText(it, feed, personal) {
    if (!personal) return "";
    if (feed.kind === "ranked") return ` · ${it.source} · score ${it.score.toFixed(3)}`;
    if (it.source === "similar") return ` · similarity ${it.score.toFixed(3)}`;
    return ` · ${it.source}`;  // a cold start's latest or popular post
  }

  // The columns show one user's posts or none: after a failed load nothing of the previous user
  // stays clickable (Read/Like would record for a user the picker no longer names).
  function clearColumns() {
    for (const id of ["col-personal", "col-latest", "col-popular"]) $(id).replaceChildren();
    $("feed-mode").textContent = "";
    state.shownUser = null;
    state.previous = new Set();
  }

  function render(list, feed, showWhy) {
    list.replaceChildren();
    if (!feed.items.length) {
      list.appendChild(el("li", "feed-empty", feed.note || "Nothing in this window."));
    }
    for (const it of feed.items) {
      const li = el("li", "feed-item");
      li.dataset.postId = it.id;
      if (showWhy && state.previous.size && !state.previous.has(it.id)) li.classList.add("new");
      const title = it.title || it.snippet || it.id;
      const heading = el("h3", "", title);
      heading.lang = "ko";
      li.appendChild(heading);
      const when = new Date(it.created_at).toLocaleDateString("ko-KR");
      const meta = el("div", "meta",
        `${it.community} · ${when} · ♥ ${it.likes} · 💬 ${it.comments}${scoreText(it, feed, showWhy)}`);
      meta.lang = "ko";
      li.appendChild(meta);
      if (showWhy && it.why) {
        const read = it.why.title ? `“${it.why.title}”` : "an untitled post";
        li.appendChild(el("div", "why", `because you read ${read} (${it.why.similarity.toFixed(2)})`));
      }
      const actions = el("div", "actions");
      for (const kind of ["read", "like"]) {
        const b = el("button", kind, kind === "read" ? "Read" : "Like");
        b.type = "button";
        b.setAttribute("aria-label", `${kind === "read" ? "Read" : "Like"} “${title}”`);
        b.dataset.kind = kind;
        b.addEventListener("click", () => record(it, kind, b));
        actions.appendChild(b);
      }
      li.appendChild(actions);
      // A failed Read or Like says so here, next to the button, not at the top of the page.
      const problem = el("p", "error item-error");
      problem.setAttribute("role", "alert");
      li.appendChild(problem);
      list.appendChild(li);
    }
  }

  async function record(item, kind, button) {
    const user = state.shownUser;  // the post is in this user's columns
    if (!user || button.disabled) return;
    button.disabled = true;  // a double click is one event
    const problem = button.closest(".feed-item").querySelector(".item-error");
    problem.textContent = "";
    const failed = (message) => {
      problem.textContent = message;
      button.disabled = false;
      problem.scrollIntoView({ block: "nearest" });
    };
    let resp;
    try {
      resp = await fetch("/events", {
        method: "POST",
        headers: headers(true),
        body: JSON.stringify({ events: [{ user_id: user, post_id: item.id, kind: kind }] }),
      });
    } catch (e) {
      failed(hanseekApi.unreachable(e));
      return;
    }
    if (!resp.ok) {
      failed(await hanseekApi.problem(resp));
      return;
    }
    const title = item.title || item.snippet || item.id;
    const li = el("li", "", `${user} ${kind === "like" ? "liked" : "read"} “${title}”`);
    $("feed-log").prepend(li);
    const list = button.closest("ol, ul");
    const at = [...list.children].indexOf(button.closest(".feed-item"));
    await refresh(true);
    refocus(list, item.id, kind, at, button);
  }

  // The redraw replaced the button pressed, and the keyboard's focus fell back to the page: it goes
  // to the same action on the same post in the same column, or, where that post left the column
  // (read, it may drop out of the personal feed), to the post that took its place.
  function refocus(list, postId, kind, at, pressed) {
    const lost = document.activeElement === pressed || !document.activeElement || document.activeElement === document.body;
    if (!lost || pressed.isConnected) return;
    const items = [...list.querySelectorAll(":scope > li.feed-item")];
    const item = items.find((li) => li.dataset.postId === postId) || items[Math.min(at, items.length - 1)];
    const target = item && item.querySelector(`button[data-kind="${kind}"]`);
    if (target) target.focus();
  }

  async function refresh(keepPrevious) {
    const user = $("feed-user").value;
    if (!user) return;
    const days = $("feed-days").value;
    const path = $("feed-path").value;
    const method = $("feed-method").value;
    const q = `k=10&days=${encodeURIComponent(days)}`;
    const ticket = state.seq.next();
    $("feed-error").textContent = "";
    $("feed-status").textContent = "Loading…";
    // Reload and Back come back to this user and these choices (a new pick is a new history entry).
    hanseekApi.keepUrl(new URLSearchParams({ user, days, method, path }));
    try {
      const [mine, latest, popular] = await Promise.all([
        getJSON(`/users/${encodeURIComponent(user)}/feed?${q}&path=${encodeURIComponent(path)}&method=${method}`),
        getJSON(`/feeds/latest?user_id=${encodeURIComponent(user)}&${q}`),
        getJSON(`/feeds/popular?user_id=${encodeURIComponent(user)}&${q}`),
      ]);
      if (!state.seq.isLatest(ticket)) return;  // the user changed the picker meanwhile
      if (!keepPrevious) state.previous = new Set();
      state.shownUser = user;
      render($("col-personal"), mine, true);
      render($("col-latest"), latest, false);
      render($("col-popular"), popular, false);
      state.previous = new Set(mine.items.map((it) => it.id));
      // A user in no community has no ranker, path or candidates to name: no "()" or "?" for them.
      const how = [mine.cold_start ? "cold start: latest + popular" : "", mine.ranker, mine.path]
        .filter(Boolean).join(" · ");
      $("feed-mode").textContent = how ? `(${how})` : "";
      const n = mine.estimated_candidates;
      const candidates = n == null ? "" : `${n} ${n === 1 ? "candidate" : "candidates"} · `;
      $("feed-status").textContent =
        `${user} · communities: ${mine.communities.join(", ") || "none"} · ` +
        `${candidates}${mine.took_ms.toFixed(1)} ms`;
      document.body.dataset.feedReady = "1";
      document.body.dataset.feedVersion = String(++state.version);  // lets tests wait for a re-render
    } catch (e) {
      if (!state.seq.isLatest(ticket)) return;
      clearColumns();
      $("feed-status").textContent = "";
      $("feed-error").textContent = e.message;
      document.body.dataset.feedVersion = String(++state.version);
    }
  }

  // The user and filters of a URL (opening it, reload, Back, Forward); with `reset`, a filter the URL
  // leaves out goes back to its default.
  function choose(params, wanted, reset = false) {
    for (const name of FILTERS) {
      const value = params.get(name);
      const select = $(`feed-${name}`);
      if (value && [...select.options].some((o) => o.value === value)) select.value = value;
      else if (!value && reset) select.value = [...select.options].find((o) => o.defaultSelected)?.value ?? select.value;
    }
    if (wanted) {
      // The list holds the first 200 users only: a user named in the URL is asked for even when not
      // in it, and an unknown one gets the API's 404 message instead of someone else's feed.
      const sel = $("feed-user");
      if (![...sel.options].some((o) => o.value === wanted)) sel.appendChild(new Option(wanted, wanted));
      sel.value = wanted;
    }
  }

  async function init() {
    try {
      const users = await getJSON("/users?limit=200");
      const sel = $("feed-user");
      const before = sel.value;
      sel.replaceChildren();
      for (const u of users) sel.appendChild(new Option(u, u));
      const params = new URLSearchParams(location.search);
      choose(params, before || params.get("user"));
      if (!sel.options.length) $("feed-status").textContent = "No users yet: load the demo or POST /events.";
      else await hanseekApi.inPlace(() => refresh(false));
    } catch (e) {
      $("feed-error").textContent = e.message;
    }
  }

  $("feed-form").addEventListener("submit", (ev) => { ev.preventDefault(); refresh(false); });
  $("feed-user").addEventListener("change", () => refresh(false));
  for (const name of FILTERS) $(`feed-${name}`).addEventListener("change", () => refresh(false));
  // Under protect_reads nothing loads without the key: load again once it is typed.
  hanseekApi.onChange(() => { if (hanseekApi.readsNeedKey) init(); });
  hanseekApi.onHistory((params) => {
    choose(params, params.get("user"), true);
    if ($("feed-user").value) refresh(false);
  });
  init();
})();
