// /cloze page: optional OCR of a page photo, then POST /keywords/cloze and render the worksheet.
(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("cloze-form");
  const status = $("cloze-status");
  const error = $("cloze-error");

  let shown = 0;  // counts messages, so a background load clears only what was there when it began
  const runs = hanseekApi.sequence();  // only the newest worksheet is shown
  let lastOcr = null;  // the text the last photo gave: a new photo replaces it, typed text stays
  // The text goes in the URL only while the URL stays short enough for any server or proxy
  // (percent-encoded Korean takes 9 bytes a character: about 650 characters); a longer page is left out.
  const MAX_URL_TEXT = 6000;
  // A worksheet refused for want of the API key (a link opened in a new tab under protect_reads) is
  // asked for again once the key is typed.
  let refused = false;
  function show(msg, isError) {
    shown += 1;
    status.textContent = isError ? "" : msg;
    error.textContent = isError ? msg : "";
  }

  // Only the newest reading of a photo fills the text box: a slow answer for a photo since replaced
  // is dropped (as makeCloze drops a worksheet overtaken by a newer one). The button waits meanwhile.
  const reads = hanseekApi.sequence();
  const ocrButton = $("cloze-ocr");
  let reading = false;
  // A reading under way is dropped: a new photo was chosen, or Back/Forward left its entry.
  function dropReading() {
    if (!reading) return;
    reads.next();
    reading = false;
    ocrButton.disabled = false;
    show("", false);
  }

  // `run`: the worksheet request that asked for this reading, if any: once a newer one was asked
  // for (the user pasted text and pressed "Make blanks" again), this reading must not fill the box.
  async function runOcr(run) {
    const file = $("cloze-image").files[0];
    if (!file) { show("Choose a page photo first.", true); return false; }
    const ticket = reads.next();
    reading = true;
    ocrButton.disabled = true;
    show("Reading the photo…", false);
    const data = new FormData();
    data.append("image", file);
    try {
      const resp = await fetch("/keywords/ocr", { method: "POST", body: data, headers: hanseekApi.headers(false) });
      const answer = resp.ok ? await resp.json() : await hanseekApi.problem(resp);
      if (!reads.isLatest(ticket)) return false;  // another photo was chosen or read meanwhile
      if (run !== undefined && !runs.isLatest(run)) return false;  // its worksheet was overtaken
      if (!resp.ok) { show(answer, true); return false; }
      $("cloze-text").value = answer.text;
      lastOcr = $("cloze-text").value;  // as the text box holds it (it normalises line breaks)
      show("Read " + answer.chars + " characters from the photo.", false);
      return true;
    } catch (e) {
      if (!reads.isLatest(ticket)) return false;
      show(hanseekApi.unreachable(e), true);
      return false;
    } finally {
      if (reads.isLatest(ticket)) { reading = false; ocrButton.disabled = false; }
    }
  }

  function render(result) {
    const sheet = $("cloze-sheet");
    sheet.textContent = "";
    for (const seg of result.segments) {
      if (seg.blank !== null && seg.blank !== undefined) {
        const span = document.createElement("span");
        span.className = "cloze-blank";
        span.dataset.number = seg.blank;
        span.textContent = "(" + seg.blank + ")";
        sheet.appendChild(span);
      } else {
        sheet.appendChild(document.createTextNode(seg.text));
      }
    }
    const answers = $("cloze-answers");
    answers.textContent = "";
    for (const b of result.blanks) {
      const li = document.createElement("li");
      li.value = b.number;
      li.textContent = b.answer;
      li.title = b.term + " · weight " + b.weight.toFixed(3);
      answers.appendChild(li);
    }
    $("cloze-answers-box").hidden = true;  // a new worksheet starts with its answers hidden
    $("cloze-reveal").textContent = "Show answers";
    $("cloze-result").hidden = false;
  }

  async function makeCloze(ev) {
    ev.preventDefault();
    const ticket = runs.next();
    if (!$("cloze-text").value.trim() && $("cloze-image").files.length) {
      if (!(await runOcr(ticket))) return;
      if (!runs.isLatest(ticket)) return;  // a newer worksheet was asked for meanwhile
    }
    if (!$("cloze-text").value.trim()) {
      $("cloze-result").hidden = true;
      show("Paste a page, or choose a photo of one.", true);
      // A reload shows the emptied form, not the worksheet of the text cleared from it.
      const here = new URLSearchParams(location.search);
      here.delete("text");
      hanseekApi.keepUrl(here);
      return;
    }
    const payload = {
      text: $("cloze-text").value,
      method: $("cloze-method").value,
      ratio: parseFloat($("cloze-ratio").value) || 0.2,
      allow_duplicates: $("cloze-duplicates").checked,
    };
    const subject = $("cloze-subject").value;
    if (subject) payload.subject = subject;
    keepInUrl(payload);
    show("Weighing words…", false);
    try {
      const resp = await fetch("/keywords/cloze", {
        method: "POST",
        headers: hanseekApi.headers(true),
        body: JSON.stringify(payload),
      });
      const answer = resp.ok ? await resp.json() : await hanseekApi.problem(resp);
      if (!runs.isLatest(ticket)) return;  // a newer worksheet was asked for meanwhile
      refused = resp.status === 401;
      if (!resp.ok) { $("cloze-result").hidden = true; show(answer, true); return; }
      if (!answer.blanks.length) {
        $("cloze-result").hidden = true;
        show("No word to blank: the page has no nouns this method can weigh (" +
          answer.candidates + " candidates).", true);
        return;
      }
      render(answer);
      const n = answer.blanks.length;
      show(`${n} ${n === 1 ? "blank" : "blanks"} out of ${answer.candidates} candidate ` +
        `${answer.candidates === 1 ? "word" : "words"}.`, false);
    } catch (e) {
      // A network failure (server down, connection cut) rejects fetch: say so instead of leaving "…".
      if (!runs.isLatest(ticket)) return;
      $("cloze-result").hidden = true;
      show(hanseekApi.unreachable(e), true);
    }
  }

  // Reload, Back and a shared link come back to this subject and these settings (and the text if short).
  function keepInUrl(payload) {
    const here = new URLSearchParams();
    if (payload.subject) here.set("subject", payload.subject);
    here.set("method", payload.method);
    here.set("ratio", String(payload.ratio));
    if (payload.allow_duplicates) here.set("dup", "1");
    if (new URLSearchParams({ text: payload.text }).toString().length <= MAX_URL_TEXT) here.set("text", payload.text);
    hanseekApi.keepUrl(here);
  }

  // A subject named in the URL is asked for even when the list lacks it (not loaded yet under
  // protect_reads, or deleted since): an unknown one gets the API's 404, not a general worksheet.
  function chooseSubject(name) {
    const select = $("cloze-subject");
    if (!name) return;
    if (![...select.options].some((o) => o.value === name)) select.appendChild(new Option(name, name));
    select.value = name;
  }

  // Under protect_reads the page came without the subject list: ask for it with the key.
  async function loadSubjects() {
    if (!hanseekApi.readsNeedKey || !hanseekApi.value()) return;
    const before = shown;
    try {
      const resp = await fetch("/keywords/subjects", { headers: hanseekApi.headers(false) });
      if (!resp.ok) { const msg = await hanseekApi.problem(resp); if (shown === before) show(msg, true); return; }
      const select = $("cloze-subject");
      const chosen = select.value;
      select.replaceChildren(new Option("(general)", ""));
      for (const s of await resp.json()) select.appendChild(new Option(s.name, s.name));
      chooseSubject(chosen);
      if (shown === before) show("", false);  // e.g. the 401 from before the key was typed
    } catch (e) {
      if (shown === before) show(hanseekApi.unreachable(e), true);
    }
  }

  form.addEventListener("submit", makeCloze);
  hanseekApi.onChange(() => loadSubjects().then(() => { if (refused) form.requestSubmit(); }));
  // Settings from the URL; with the text there too the worksheet is made again, as the images page
  // runs its search again (after the subject list, which under protect_reads comes with the key).
  // With `reset` (Back, Forward) what the URL leaves out goes back to the form's defaults.
  function fill(given, reset) {
    const method = given.get("method");
    const methods = $("cloze-method");
    if (method && [...methods.options].some((o) => o.value === method)) methods.value = method;
    else if (reset) methods.value = [...methods.options].find((o) => o.defaultSelected)?.value ?? methods.value;
    if (given.get("ratio")) $("cloze-ratio").value = given.get("ratio");
    else if (reset) $("cloze-ratio").value = $("cloze-ratio").defaultValue;
    if (given.has("dup") || reset) $("cloze-duplicates").checked = given.get("dup") === "1";
    if (given.get("text") || reset) $("cloze-text").value = given.get("text") || "";
    if (reset) $("cloze-subject").value = "";
    chooseSubject(given.get("subject"));
  }
  const given = new URLSearchParams(location.search);
  fill(given, false);
  loadSubjects().then(() => { if (given.get("text")) hanseekApi.inPlace(() => form.requestSubmit()); });
  // Back and Forward: the entry's settings, and its worksheet made again (or none, without text).
  hanseekApi.onHistory((params) => {
    dropReading();  // a photo read for the entry left must not fill this one's text
    fill(params, true);
    if (params.get("text")) {
      form.requestSubmit();
    } else {
      runs.next();  // a worksheet still on its way belongs to the entry left
      $("cloze-result").hidden = true;
      show("", false);
    }
  });
  ocrButton.addEventListener("click", () => { runOcr(); });
  // A new photo: the text read from the previous one goes, so "Make blanks" reads the new one, and a
  // reading of the previous one still under way is dropped (the button can read the new one now).
  $("cloze-image").addEventListener("change", () => {
    dropReading();
    if (lastOcr !== null && $("cloze-text").value === lastOcr) {
      $("cloze-text").value = "";
      lastOcr = null;
    }
  });
  // Answers stay hidden on screen until asked for (a student checking themselves); print shows them.
  $("cloze-reveal").addEventListener("click", () => {
    const answers = $("cloze-answers-box");
    answers.hidden = !answers.hidden;
    $("cloze-reveal").textContent = answers.hidden ? "Show answers" : "Hide answers";
  });
  $("cloze-print").addEventListener("click", () => window.print());
})();
