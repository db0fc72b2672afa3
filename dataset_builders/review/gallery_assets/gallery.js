"use strict";
(function () {
  const data = JSON.parse(document.getElementById("gallery-data").textContent);
  const items = data.items;
  const grid = document.getElementById("grid");
  const filters = {
    feature: document.getElementById("f-feature"), split: document.getElementById("f-split"),
    origin: document.getElementById("f-origin"), decision: document.getElementById("f-decision"),
    correct: document.getElementById("f-correct"),
  };
  const showExpertRejected = document.getElementById("f-expert");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fill(select, values) {
    for (const v of values) { const o = el("option", "", v); o.value = v; select.appendChild(o); }
  }
  const uniq = (xs) => Array.from(new Set(xs)).sort();
  const present = new Set(items.flatMap((it) => it.features));
  fill(filters.feature, data.features.filter((f) => present.has(f)));
  fill(filters.split, uniq(items.map((it) => it.split)));
  fill(filters.origin, uniq(items.map((it) => it.origin)));
  fill(filters.decision, uniq(items.map((it) => it.decision)));
  fill(filters.correct, uniq(items.flatMap((it) => it.answers.length ? it.answers.map((a) => a.status) : ["no answer"])));

  function card(it) {
    const c = el("article", "card");
    c.id = "item-" + it.id;
    c.dataset.id = it.id;
    c.appendChild(el("h2", "", it.id));
    if (it.img) { const img = el("img"); img.src = it.img; img.alt = it.id; c.appendChild(img); }
    else c.appendChild(el("div", "noimg", "no image"));
    const meta = el("div", "small");
    meta.append(el("span", "tag " + it.decision, it.decision), el("span", "tag", "split " + it.split),
                el("span", "tag", "origin " + it.origin));
    if (it.paper) meta.append(" " + it.paper);
    c.appendChild(meta);
    if (it.rejected_by) c.appendChild(el("div", "rejection", "rejected by " + it.rejected_by + ": " + it.rejection));
    const labels = el("div");
    labels.appendChild(el("b", "", "labels: "));
    if (!it.features.length) labels.append("none");
    for (const f of it.features) {
      const t = el("span", "tag", f);
      if (it.evidence[f]) t.title = it.evidence[f];
      labels.appendChild(t);
    }
    c.appendChild(labels);
    for (const f of it.features) {
      if (it.evidence[f]) c.appendChild(el("div", "evidence", f + ": \u201c" + it.evidence[f] + "\u201d"));
    }
    c.appendChild(el("div", "", "caption: " + (it.caption || "(none)")));
    const filt = el("div", "small", "filter " + it.decision + (it.score === null ? "" : " (score " + it.score.toFixed(2) + ")")
                    + (it.reasons.length ? ": " + it.reasons.join(", ") : ""));
    c.appendChild(filt);
    if (it.excerpts.length) {
      const d = el("details"); d.appendChild(el("summary", "", "excerpts (" + it.excerpts.length + ")"));
      for (const x of it.excerpts) d.appendChild(el("pre", "", x));
      c.appendChild(d);
    }
    for (const a of it.answers) {
      const row = el("div", "answer");
      row.append(el("span", "status " + a.status, a.status), " " + a.run + " (" + a.model + "): ",
                 el("b", "", a.parsed.join(", ") || "(nothing)"), " vs reference ", el("b", "", a.reference.join(", ") || "(none)"));
      c.appendChild(row);
      if (a.reply) { const d = el("details"); d.append(el("summary", "", "raw answer"), el("pre", "", a.reply)); c.appendChild(d); }
    }
    return c;
  }

  const cards = items.map((it) => { const c = card(it); grid.appendChild(c); return c; });
  let current = -1;

  function matches(it) {
    const f = filters;
    if (it.decision === "expert-rejected" && !showExpertRejected.checked && f.decision.value !== it.decision) return false;
    if (f.feature.value && !it.features.includes(f.feature.value)) return false;
    if (f.split.value && it.split !== f.split.value) return false;
    if (f.origin.value && it.origin !== f.origin.value) return false;
    if (f.decision.value && it.decision !== f.decision.value) return false;
    if (f.correct.value) {
      const st = it.answers.length ? it.answers.map((a) => a.status) : ["no answer"];
      if (!st.includes(f.correct.value)) return false;
    }
    return true;
  }
  function visible() { return cards.filter((c) => !c.hidden); }
  function select(card) {
    cards.forEach((c) => c.classList.remove("current"));
    current = card ? cards.indexOf(card) : -1;
    document.body.dataset.current = card ? card.dataset.id : "";
    if (card) { card.classList.add("current"); card.scrollIntoView({block: "nearest"}); }
  }
  function apply() {
    items.forEach((it, i) => { cards[i].hidden = !matches(it); });
    const shown = visible();
    document.getElementById("count").textContent = shown.length + " of " + items.length + " shown";
    select(shown.includes(cards[current]) ? cards[current] : shown[0]);
  }
  function move(step) {
    const shown = visible();
    if (!shown.length) return;
    const at = shown.indexOf(cards[current]);
    select(shown[Math.min(shown.length - 1, Math.max(0, at + step))]);
  }
  Object.values(filters).forEach((s) => s.addEventListener("change", apply));
  showExpertRejected.addEventListener("change", apply);
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "SELECT" || e.target.tagName === "INPUT" || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === "j" || e.key === "ArrowRight" || e.key === "ArrowDown") { move(1); e.preventDefault(); }
    else if (e.key === "k" || e.key === "ArrowLeft" || e.key === "ArrowUp") { move(-1); e.preventDefault(); }
  });
  grid.addEventListener("click", (e) => { const c = e.target.closest(".card"); if (c) select(c); });
  apply();
})();
