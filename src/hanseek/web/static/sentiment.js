// /sentiment page: one review per line, POST /sentiment, a table of labels and probabilities.
"use strict";
(() => {
  const form = document.getElementById("sentiment-form");
  const text = document.getElementById("sentiment-text");
  const model = document.getElementById("sentiment-model");
  const status = document.getElementById("sentiment-status");
  const error = document.getElementById("sentiment-error");
  const result = document.getElementById("sentiment-result");
  const rows = document.getElementById("sentiment-rows");
  const used = document.getElementById("sentiment-model-used");
  const runs = hanseekApi.sequence();  // only the newest classification shows
  // The reviews go in the URL only while the URL stays short enough for any server or proxy
  // (percent-encoded Korean takes 9 bytes a character: about 650 characters); longer ones are left out.
  const MAX_URL_TEXT = 6000;
  // Reviews refused for want of the API key (a link opened in a new tab under protect_reads) are
  // classified again once the key is typed.
  let refused = false;
  // Reload, Back and a shared link come back to these reviews (when short) and this model.
  function keepInUrl() {
    const here = new URLSearchParams();
    const short = new URLSearchParams({ text: text.value }).toString().length <= MAX_URL_TEXT;
    if (text.value.trim() && short) here.set("text", text.value);
    if (model.value) here.set("model", model.value);
    hanseekApi.keepUrl(here);
  }
  // A model named in the URL is asked for even when the list lacks it (not loaded yet under
  // protect_reads, or gone since): an unknown one gets the API's 404, not the default's answer.
  function chooseModel(name) {
    if (!name) return;
    if (![...model.options].some((o) => o.value === name)) model.appendChild(new Option(name, name));
    model.value = name;
  }
  // The API's words for the page's: it numbers the reviews it was sent ("texts[1]", from 0, blank
  // lines left out), the user sees lines; and a web user has no command line to run.
  function inPageWords(message, lineOf) {
    const said = message
      .replace(/texts\[(\d+)\]/g, (_, i) => `line ${lineOf[Number(i)] ?? Number(i) + 1}`)
      .replace(/^([\d,]+) texts in one request/, "$1 reviews at once")
      .replace(/; see `hanseek sentiment models`/, "; choose one from the Model list")
      .replace(/; run `hanseek sentiment train`/, "; one has to be trained on the server first")
      .replace(/; retrain it or pick another/, "; choose another from the Model list");
    return said.charAt(0).toUpperCase() + said.slice(1);
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const texts = [];
    const lineOf = [];  // the line number (from 1) of each review sent
    text.value.split("\n").forEach((line, n) => {
      // A line of only what the server drops (a zero-width space copied from a web page) is blank:
      // sent, it refused the whole batch.
      if (!hanseekApi.visible(line)) return;
      texts.push(line.trim());
      lineOf.push(n + 1);
    });
    if (texts.length === 0) {
      runs.next();  // an answer still on its way is for text that is gone
      result.hidden = true;
      status.textContent = "";
      error.textContent = "Type a review first.";
      keepInUrl();  // a reload shows the emptied form, not the reviews cleared from it
      return;
    }
    const body = { texts };
    if (model.value) body.model = model.value;
    keepInUrl();
    const ticket = runs.next();
    status.textContent = "Classifying…";
    try {
      const res = await fetch("/sentiment", {
        method: "POST", headers: hanseekApi.headers(true), body: JSON.stringify(body),
      });
      const answer = res.ok ? await res.json() : await hanseekApi.problem(res);
      if (!runs.isLatest(ticket)) return;
      refused = res.status === 401;
      if (!res.ok) { error.textContent = res.status === 401 ? answer : inPageWords(answer, lineOf); result.hidden = true; return; }
      const data = answer;
      rows.replaceChildren(...data.results.map((r, i) => {
        const tr = document.createElement("tr");
        tr.className = "sentiment-row " + r.label;
        const label = document.createElement("td");
        label.className = "nowrap";
        label.textContent = r.label === "positive" ? "positive 😊" : "negative 😞";
        label.style.color = r.label === "positive" ? "#067647" : "#b42318";
        label.style.fontWeight = "600";
        const prob = document.createElement("td");
        prob.className = "nowrap";
        // A number, or a dash: a probability that is no number (null) once stopped the whole table
        // with a script error (until session 18, when such a model was still served).
        prob.textContent = typeof r.probability === "number" && isFinite(r.probability)
          ? r.probability.toFixed(3) : "–";
        const review = document.createElement("td");
        review.className = "text";
        review.lang = "ko";
        review.textContent = texts[i];
        tr.append(label, prob, review);
        return tr;
      }));
      used.textContent = "model: " + data.model;
      result.hidden = false;
    } catch (e) {
      if (runs.isLatest(ticket)) { error.textContent = hanseekApi.unreachable(e); result.hidden = true; }
    } finally {
      if (runs.isLatest(ticket)) status.textContent = "";
    }
  });
  // Under protect_reads the page came without the model list: ask for it with the key.
  async function loadModels() {
    if (!hanseekApi.readsNeedKey || !hanseekApi.value()) return;
    const before = error.textContent;
    try {
      const res = await fetch("/sentiment/models", { headers: hanseekApi.headers(false) });
      if (!res.ok) {
        const msg = await hanseekApi.problem(res);
        if (error.textContent === before) error.textContent = msg;
        return;
      }
      const data = await res.json();
      const chosen = model.value;
      model.replaceChildren(new Option(data.default ? `default (${data.default})` : "default", ""));
      for (const m of data.models) model.appendChild(new Option(m.name, m.name));
      chooseModel(chosen);
      if (error.textContent === before) error.textContent = "";  // only what was there before the key
    } catch (e) {
      if (error.textContent === before) error.textContent = hanseekApi.unreachable(e);
    }
  }
  hanseekApi.onChange(() => loadModels().then(() => { if (refused) form.requestSubmit(); }));
  // Reviews and model from the URL; with reviews there they are classified again, as the images page
  // runs its search again (after the model list, which under protect_reads comes with the key).
  const given = new URLSearchParams(location.search);
  if (given.get("text")) text.value = given.get("text");
  chooseModel(given.get("model"));
  loadModels().then(() => { if (given.get("text")) hanseekApi.inPlace(() => form.requestSubmit()); });
  // Back and Forward: the entry's reviews and model, classified again (or no table, without reviews).
  hanseekApi.onHistory((params) => {
    text.value = params.get("text") || "";
    model.value = "";
    chooseModel(params.get("model"));
    if (params.get("text")) {
      form.requestSubmit();
    } else {
      runs.next();  // an answer still on its way belongs to the entry left
      result.hidden = true;
      status.textContent = "";
      error.textContent = "";
    }
  });
})();
