// /cloze page: optional OCR of a page photo, then POST /keywords/cloze and render the worksheet.
(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("cloze-form");
  const status = $("cloze-status");
  const error = $("cloze-error");

  async function problem(resp) {
    try {
      const body = await resp.json();
      return body.detail || body.title || resp.statusText;
    } catch (e) {
      return resp.status + " " + resp.statusText;
    }
  }

  function show(msg, isError) {
    status.textContent = isError ? "" : msg;
    error.textContent = isError ? msg : "";
  }

  async function runOcr() {
    const file = $("cloze-image").files[0];
    if (!file) { show("Choose a page photo first.", true); return false; }
    show("Reading the photo…", false);
    const data = new FormData();
    data.append("image", file);
    const resp = await fetch("/keywords/ocr", { method: "POST", body: data });
    if (!resp.ok) { show(await problem(resp), true); return false; }
    const body = await resp.json();
    $("cloze-text").value = body.text;
    show("Read " + body.chars + " characters from the photo.", false);
    return true;
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
    $("cloze-result").hidden = false;
  }

  async function makeCloze(ev) {
    ev.preventDefault();
    if (!$("cloze-text").value.trim() && $("cloze-image").files.length) {
      if (!(await runOcr())) return;
    }
    const payload = {
      text: $("cloze-text").value,
      method: $("cloze-method").value,
      ratio: parseFloat($("cloze-ratio").value) || 0.2,
      allow_duplicates: $("cloze-duplicates").checked,
    };
    const subject = $("cloze-subject").value;
    if (subject) payload.subject = subject;
    show("Weighing words…", false);
    const resp = await fetch("/keywords/cloze", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
    if (!resp.ok) { $("cloze-result").hidden = true; show(await problem(resp), true); return; }
    const result = await resp.json();
    render(result);
    show(result.blanks.length + " blanks out of " + result.candidates + " candidate words.", false);
  }

  form.addEventListener("submit", makeCloze);
  $("cloze-ocr").addEventListener("click", () => { runOcr(); });
  $("cloze-print").addEventListener("click", () => window.print());
})();
