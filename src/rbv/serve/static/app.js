"use strict";
// rbv serve: selection, actions (POST with the page's token), toasts with undo.
const token = document.querySelector('meta[name="rbv-token"]').content;
// every address of the server is under its secret folder (see rbv/serve/access.py)
const base = document.querySelector('meta[name="rbv-base"]').content;
const toastBox = document.getElementById("toast");

function showToast(message, edit, error, remedies) {
  toastBox.textContent = message;
  toastBox.className = error ? "error" : "";
  // a refusal's remedies: each a button that does it (keep this name, override, …)
  for (const remedy of remedies || []) {
    const button = document.createElement("button");
    button.textContent = remedy.label;
    button.className = "remedy";
    button.onclick = () => act(remedy.action, remedy.body);
    toastBox.appendChild(button);
  }
  if (edit) {
    const undo = document.createElement("button");
    undo.textContent = "Undo";
    undo.id = "toast-undo";
    undo.onclick = () => act("undo", {edit: edit, count: 1});
    toastBox.appendChild(undo);
  }
  // It stays (in the page's flow under the menu, so it covers nothing): hiding it would
  // move the page under the person's pointer.
  toastBox.hidden = false;
  if (error) toastBox.scrollIntoView({block: "nearest"});
}

async function send(action, data) {  // the server's answer, whatever it is
  const response = await fetch(base + "/api/" + action, {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-RBV-Token": token},
    body: JSON.stringify(data),
  });
  try { return await response.json(); } catch (e) { return {ok: false, error: "no answer"}; }
}

// What the page shows of the persons and faces an answer is about, sent with it: the
// server refuses (changing nothing) an answer whose page is out of date, where a command
// or another page changed one of them since.
const SHOWING = new Set(["name", "merge", "hide", "unhide", "born", "cover", "reject", "move",
  "new", "same", "notface", "isface", "split", "one", "hide_these", "unhide_these", "confirm",
  "box"]);
function personShown(d, details) {
  const person = {id: d.person || d.tile, name: d.shownName || null, hidden: d.shownHidden === "true"};
  if (details) Object.assign(person, {born: d.shownBorn || null, cover: d.shownCover ? Number(d.shownCover) : null});
  return person;
}
function shownFor(data) {
  const header = document.querySelector(".head[data-person]");
  const persons = header ? [personShown(header.dataset, true)]
    : (data.persons || []).map(id => document.querySelector(`[data-tile="${CSS.escape(id)}"]`))
        .filter(Boolean).map(t => personShown(t.dataset, false));
  const ids = [...(data.faces || []), ...(data.kept || []), ...(data.moved || [])];
  if (typeof data.face === "number") ids.push(data.face);
  const faces = ids.map(id => document.querySelector(`[data-shown-face="${id}"]`)).filter(Boolean)
    .map(f => Object.assign({id: Number(f.dataset.shownFace), person: f.dataset.shownPerson || null, by: f.dataset.shownBy || null},
      f.dataset.shownBox ? {box: f.dataset.shownBox.split(" ").map(Number)} : {}));
  return {persons, faces};
}

async function act(action, data) {
  if (SHOWING.has(action)) data = {...data, shown: shownFor(data)};
  const answer = await send(action, data);
  if (answer.confirm === "merge") {
    if (confirm(answer.message)) {
      // the name typed is the one that stays (the other person has it already)
      return act("merge", {person: answer.other, source: data.person, keep_name: data.name});
    }
    return answer;
  }
  if (!answer.ok) {
    showToast(answer.error || answer.message || "refused", null, true, answer.remedies);
    return answer;
  }
  sessionStorage.setItem("rbv-toast", JSON.stringify({message: answer.message, edit: answer.edit}));
  scrollTo(0, 0);  // the next page opens at its top, where the toast says what was done
  if (answer.go) { location.href = base + answer.go; } else { location.reload(); }
  return answer;
}

const saved = sessionStorage.getItem("rbv-toast");
if (saved) {
  sessionStorage.removeItem("rbv-toast");
  const t = JSON.parse(saved);
  showToast(t.message, t.edit, false);
}

// --- a photo: face boxes, placed in percent of the photo -------------------------
document.querySelectorAll(".box[data-place]").forEach(box => {
  const [left, top, width, height] = box.dataset.place.split(" ");
  Object.assign(box.style, {left: left + "%", top: top + "%", width: width + "%", height: height + "%"});
});

// --- a photo: drawing a face the detector missed (drag a box on the photo) ---------
const canvas = document.querySelector(".photo[data-image]");
if (canvas) {
  const img = canvas.querySelector("img");
  const form = document.getElementById("draw-form");
  const hint = document.getElementById("draw-hint");
  let start = null, drawn = null, box = null;
  const at = event => {  // the pointer in the photo's own pixels (as shown, upright)
    const r = img.getBoundingClientRect();
    const fx = Math.min(Math.max((event.clientX - r.left) / r.width, 0), 1);
    const fy = Math.min(Math.max((event.clientY - r.top) / r.height, 0), 1);
    return [fx, fy];
  };
  const place = (a, b) => {
    const [x1, x2] = [Math.min(a[0], b[0]), Math.max(a[0], b[0])];
    const [y1, y2] = [Math.min(a[1], b[1]), Math.max(a[1], b[1])];
    Object.assign(drawn.style, {left: 100 * x1 + "%", top: 100 * y1 + "%",
      width: 100 * (x2 - x1) + "%", height: 100 * (y2 - y1) + "%"});
    const w = Number(canvas.dataset.width), h = Number(canvas.dataset.height);
    box = [Math.round(x1 * w), Math.round(y1 * h), Math.round((x2 - x1) * w), Math.round((y2 - y1) * h)];
  };
  img.addEventListener("pointerdown", event => {
    event.preventDefault();
    if (drawn) drawn.remove();
    drawn = document.createElement("div");
    drawn.className = "drawing";
    canvas.appendChild(drawn);
    start = at(event);
    place(start, start);
    img.setPointerCapture(event.pointerId);
  });
  img.addEventListener("pointermove", event => { if (start) place(start, at(event)); });
  img.addEventListener("pointerup", event => {
    if (!start) return;
    place(start, at(event));
    start = null;
    if (box[2] < 4 || box[3] < 4) { drawn.remove(); drawn = null; return; }  // a click
    hint.textContent = `Box ${box[2]}×${box[3]} at ${box[0]},${box[1]}:`;
    form.hidden = false;
    document.getElementById("draw-person").focus();
  });
  document.getElementById("draw-add").addEventListener("click", () => {
    const person = value("draw-person").trim();
    act("draw", {image: Number(canvas.dataset.image), box: box, ...(person ? {person} : {})});
  });
  document.getElementById("draw-cancel").addEventListener("click", () => location.reload());
}

// --- a person's page: selecting faces -------------------------------------------
const faces = Array.from(document.querySelectorAll("#faces .face"));
const head = document.querySelector("[data-person]");
let last = null;
function refreshCount() {
  const n = faces.filter(f => f.classList.contains("selected")).length;
  const label = document.getElementById("selected");
  if (label) label.textContent = n + " selected";
}
faces.forEach((face, i) => {
  face.addEventListener("click", event => {
    if (event.target.tagName === "A" || event.target.tagName === "BUTTON") return;
    if (event.shiftKey && last !== null) {
      const [a, b] = [Math.min(last, i), Math.max(last, i)];
      for (let k = a; k <= b; k++) faces[k].classList.add("selected");
    } else {
      face.classList.toggle("selected");
    }
    last = i;
    refreshCount();
  });
});
function selectWhere(test) { faces.forEach(f => f.classList.toggle("selected", test(f))); refreshCount(); }
document.querySelectorAll("[data-select-doubtful]").forEach(b => b.onclick = () => selectWhere(f => f.classList.contains("doubtful")));
document.querySelectorAll("[data-select-all]").forEach(b => b.onclick = () => selectWhere(() => true));
document.querySelectorAll("[data-select-none]").forEach(b => b.onclick = () => selectWhere(() => false));
const selected = () => faces.filter(f => f.classList.contains("selected")).map(f => Number(f.dataset.face));
const value = id => (document.getElementById(id) || {value: ""}).value;

// --- type-ahead on names ----------------------------------------------------------
const names = document.getElementById("names");
document.querySelectorAll('input[list="names"]').forEach(input => {
  input.addEventListener("input", async () => {
    const response = await fetch(base + "/api/names?q=" + encodeURIComponent(input.value));
    const found = await response.json();
    names.replaceChildren(...found.map(p => { const o = document.createElement("option"); o.value = p.name; return o; }));
  });
});

// --- buttons ------------------------------------------------------------------------
function halvesAct(action) {  // "split" or "one": about the two halves the page shows
  const halves = document.querySelector(".two-people").dataset;
  const ids = text => text.split(" ").filter(Boolean).map(Number);
  return act(action, {person: head.dataset.person, kept: ids(halves.kept), moved: ids(halves.moved)});
}
const pair = document.querySelector(".pair");
const grid = document.querySelector(".candidates");
const ticks = () => Array.from(document.querySelectorAll(".candidate input"));
const pairsPage = document.querySelector(".pairs");
const pairOf = t => [t.dataset.keep, t.dataset.other];
// Done with nothing ticked on a screen of 5 or more says what it stores and asks, once:
// a second Done stores it.
let asked = false;
function answered(kind, what, data) {
  if (data.same.length === 0 && data.shown.length >= 5 && !asked) {
    asked = true;
    if (!confirm(`None ticked: mark all ${data.shown.length} as ${what}?`)) return null;
  }
  return act(kind, data);
}
const buttons = {
  name: () => act("name", {person: head.dataset.person, name: value("rename")}),
  merge: () => act("merge", {person: head.dataset.person, source: value("merge-in")}),
  hide: () => act("hide", {person: head.dataset.person}),
  unhide: () => act("unhide", {person: head.dataset.person}),
  born: () => act("born", {person: head.dataset.person, born: value("born")}),
  unborn: () => act("born", {person: head.dataset.person, born: ""}),
  reject: () => act("reject", {person: head.dataset.person, faces: selected()}),
  move: () => act("move", {faces: selected(), to: value("move-to")}),
  new: () => act("new", {faces: selected()}),
  same: () => act("same", {faces: selected()}),
  notface: () => act("notface", {faces: selected()}),
  // the confirm screen: every face it shows, confirmed at once
  "confirm-all": () => act("confirm", {person: head.dataset.person,
    faces: Array.from(document.querySelectorAll("#unconfirmed [data-shown-face]")).map(f => Number(f.dataset.shownFace))}),
  split: () => halvesAct("split"),
  one: () => halvesAct("one"),
  accept: () => act("accept", {keep: pair.dataset.keep, other: pair.dataset.other}),
  dismiss: () => act("dismiss", {keep: pair.dataset.keep, other: pair.dataset.other}),
  skip: () => act("skip", {keep: pair.dataset.keep, other: pair.dataset.other}),
  grid: () => answered("grid", "other people", {keep: grid.dataset.keep,
    same: ticks().filter(t => t.checked).map(t => t.value), shown: ticks().map(t => t.value)}),
  pairs: () => answered("pairs", "pairs of two people", {
    same: ticks().filter(t => t.checked).map(pairOf), shown: ticks().map(pairOf)}),
};
document.querySelectorAll("[data-act]").forEach(b => b.addEventListener("click", () => buttons[b.dataset.act]()));
document.querySelectorAll("[data-face-act]").forEach(b => b.addEventListener("click", () => {
  // "not a face" buttons name their face in data-mark (data-face marks a face shown)
  const face = Number(b.dataset.face || b.dataset.mark);
  if (b.dataset.faceAct === "reject") act("reject", {person: b.dataset.person, faces: [face]});
  else if (b.dataset.faceAct === "notface" || b.dataset.faceAct === "isface") act(b.dataset.faceAct, {faces: [face]});
  else if (b.dataset.faceAct === "confirm") act("confirm", {person: head.dataset.person, faces: [face]});
  else if (b.dataset.faceAct === "box") {
    // whole numbers go as numbers; anything else as typed, for the server to refuse
    const corners = value("box-" + face).split(",").map(t => /^\s*[0-9]+\s*$/.test(t) ? Number(t) : t.trim());
    act("box", {face: face, box: corners});
  }
  else act("move", {faces: [face], to: value("to-" + face)});
}));
// --- a person's page: its cover face ---------------------------------------------
document.querySelectorAll("[data-cover]").forEach(b => b.addEventListener("click",
  () => act("cover", {person: head.dataset.person, face: Number(b.dataset.cover)})));

// --- the people page: ticked persons, hidden (or shown again) as one edit -----------
const tickBoxes = Array.from(document.querySelectorAll("#people .tick input"));
const ticked = () => tickBoxes.filter(t => t.checked).map(t => t.value);
function refreshTicked() {
  const label = document.getElementById("ticked");
  if (label) label.textContent = ticked().length + " ticked";
}
tickBoxes.forEach(t => t.addEventListener("change", refreshTicked));
document.querySelectorAll("[data-tick-all]").forEach(b => b.onclick = () => { tickBoxes.forEach(t => t.checked = true); refreshTicked(); });
document.querySelectorAll("[data-tick-none]").forEach(b => b.onclick = () => { tickBoxes.forEach(t => t.checked = false); refreshTicked(); });
refreshTicked();  // a page restored from the browser's cache keeps its ticks
buttons["hide-these"] = () => act("hide_these", {persons: ticked()});
buttons["unhide-these"] = () => act("unhide_these", {persons: ticked()});
buttons["cover-auto"] = () => act("cover", {person: head.dataset.person, face: null});
const hideUnnamed = document.getElementById("hide-unnamed");
if (hideUnnamed) hideUnnamed.addEventListener("submit", async event => {
  event.preventDefault();
  const typed = value("max-faces").trim();
  // a whole number goes as one; anything else as typed, for the server to refuse
  const most = /^[0-9]+$/.test(typed) ? Number(typed) : typed;
  const preview = await send("hide_unnamed", {max_faces: most, dry_run: true});
  if (!preview.ok) { showToast(preview.error || preview.message || "refused", null, true); return; }
  if (!preview.count) { showToast(preview.message, null, false); return; }
  if (confirm(preview.message)) act("hide_unnamed", {max_faces: most});
});

document.querySelectorAll("[data-undo]").forEach(b => b.addEventListener("click",
  () => act("undo", {count: Number(b.dataset.undo), edit: Number(b.dataset.edit)})));

document.addEventListener("keydown", event => {
  if (["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName) || event.ctrlKey || event.metaKey) return;
  const keys = pair ? {y: "accept", n: "dismiss", s: "skip"} : {};
  if (pairsPage && event.key === "Enter") { buttons.pairs(); }
  else if (grid && event.key === "Enter") { buttons.grid(); }
  else if (keys[event.key]) { buttons[keys[event.key]](); }
  else if (event.key === "u") {
    const undo = document.getElementById("toast-undo");
    if (undo && !toastBox.hidden) undo.click();
  }
});

// --- a person's folded controls stay as the person left them across an edit's reload --
document.querySelectorAll("details.more").forEach(more => {
  if (sessionStorage.getItem("rbv-more") === "open") more.open = true;
  more.addEventListener("toggle", () => sessionStorage.setItem("rbv-more", more.open ? "open" : ""));
});
