// The reporting page's flow: questions, file picking and hashing, the preview of what is
// sent. Plain DOM, no framework; every step is a <section> whose heading takes the focus
// when it is shown, so keyboard and screen-reader users land at its start.

import { hashFiles } from "./hashing.js";
import { INTAKE_PATH, MIN_PDQ_QUALITY, buildReports, fingerprintsOf, goodFrames } from "./report.js";

const answers = { age: null, kind: null, shared: null };
const entries = []; // {file, row, outcome, thumbUrl}
let hashing = 0;

const $ = (selector) => document.querySelector(selector);

function show(step) {
  for (const section of document.querySelectorAll(".step")) section.hidden = section.id !== `step-${step}`;
  const heading = $(`#step-${step} h1, #step-${step} h2`);
  window.scrollTo(0, 0);
  heading.focus();
  document.body.dataset.step = step;
}

function choice(name) {
  const picked = document.querySelector(`input[name="${name}"]:checked`);
  $(`#${name}-problem`).hidden = picked !== null;
  return picked ? picked.value : null;
}

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

function thumbnail(entry) {
  if (entry.file.type.startsWith("video/")) {
    return element("div", { className: "thumb video", textContent: "video" });
  }
  if (!entry.thumbUrl) entry.thumbUrl = URL.createObjectURL(entry.file); // stays on the page
  const img = element("img", { className: "thumb", src: entry.thumbUrl, alt: "" });
  img.addEventListener("error", () => (img.style.visibility = "hidden"));
  return img;
}

function updateStatus() {
  const done = entries.filter((e) => e.outcome).length;
  const ok = entries.filter((e) => e.outcome && e.outcome.result).length;
  const status = $("#files-status");
  if (hashing > 0) {
    status.textContent = `Making fingerprints: ${done} of ${entries.length} done.`;
  } else if (entries.length > 0) {
    const left = entries.length - ok;
    status.textContent =
      `All done: ${ok} ready` + (left ? `, ${left} left out (see below).` : ".");
  }
  $("#files-next").disabled = hashing > 0 || ok === 0;
}

function describe(result) {
  if (result.kind === "video") {
    if (result.frames === null) {
      return "Video ready. This browser cannot play it, so only fingerprints of the whole file are used.";
    }
    const frames = goodFrames(result).length;
    if (frames === 0) return "Video ready. It is very plain, so only fingerprints of the whole file are used.";
    return `Video ready: fingerprints of ${frames} moment${frames === 1 ? "" : "s"} and of the whole file.`;
  }
  if (result.quality < MIN_PDQ_QUALITY) {
    return "Picture ready. It is very plain, so only its exact fingerprints are used.";
  }
  return "Picture ready.";
}

async function addFiles(files) {
  const added = [];
  for (const file of files) {
    const entry = { file, outcome: null, thumbUrl: null };
    const progress = element("progress", { max: 1, value: 0 });
    progress.setAttribute("aria-label", `Progress for ${file.name}`);
    const state = element("span", { className: "file-state", textContent: "Waiting..." });
    entry.row = element("li", {}, [
      thumbnail(entry),
      element("span", { className: "file-name", textContent: file.name }),
      state,
      progress,
    ]);
    entry.state = state;
    entry.progress = progress;
    $("#files-list").append(entry.row);
    entries.push(entry);
    added.push(entry);
  }
  hashing += 1;
  updateStatus();
  await hashFiles(
    added.map((e) => e.file),
    (index, update) => {
      const entry = added[index];
      if ("progress" in update) {
        entry.progress.value = update.progress;
        entry.state.textContent = "Making fingerprints...";
        return;
      }
      entry.outcome = update;
      entry.progress.remove();
      if (update.result) {
        entry.state.textContent = describe(update.result);
      } else {
        entry.state.textContent = update.error + " Your other files are fine.";
        entry.state.classList.add("error");
      }
      updateStatus();
    },
  );
  hashing -= 1;
  updateStatus();
}

function readyResults() {
  return entries.filter((e) => e.outcome && e.outcome.result);
}

function bodies() {
  return buildReports(answers.age, readyResults().map((e) => e.outcome.result));
}

function review() {
  const list = $("#review-list");
  list.replaceChildren();
  for (const entry of readyResults()) {
    const codes = fingerprintsOf(entry.outcome.result)
      .map((f) =>
        f.signal === "vpdq"
          ? `VPDQ: ${f.frames.length} frame${f.frames.length === 1 ? "" : "s"}, one per second`
          : `${f.signal.toUpperCase()}: ${f.hash}` + (f.quality ? ` (quality ${f.quality})` : ""),
      )
      .join("\n");
    list.append(
      element("li", {}, [
        thumbnail(entry),
        element("span", { className: "file-name", textContent: entry.file.name }),
        element("span", { className: "file-state", textContent: "Stays on this device: the file, its name and the preview." }),
        element("pre", { className: "codes", textContent: codes }),
      ]),
    );
  }
  $("#review-body").textContent = JSON.stringify(bodies(), null, 2);
  show("review");
}

function wire() {
  for (const button of document.querySelectorAll("[data-next]")) {
    button.addEventListener("click", () => show(button.dataset.next));
  }
  for (const button of document.querySelectorAll("[data-back]")) {
    button.addEventListener("click", () => show(button.dataset.back));
  }
  $("#age-next").addEventListener("click", () => {
    answers.age = choice("age");
    if (answers.age) show(answers.age === "minor" ? "kind" : "adult");
  });
  $("#kind-next").addEventListener("click", () => {
    answers.kind = choice("kind");
    if (answers.kind) show(answers.kind === "yes" ? "shared" : "notfor");
  });
  $("#shared-next").addEventListener("click", () => {
    answers.shared = choice("shared");
    if (!answers.shared) return;
    $("#tipline").hidden = answers.shared === "no";
    show("files");
  });
  $("#files-input").addEventListener("change", (event) => {
    const files = Array.from(event.target.files);
    event.target.value = "";
    if (files.length) addFiles(files);
  });
  $("#files-next").addEventListener("click", review);
  $("#send").addEventListener("click", () => {
    // Sending to INTAKE_PATH comes with the clearinghouse service; until then the page
    // shows the exact bodies it would POST there.
    $("#sent-body").textContent = JSON.stringify(bodies(), null, 2);
    $("#sent-body").dataset.path = INTAKE_PATH;
    show("sent");
  });
  document.body.dataset.ready = "true";
}

wire();
