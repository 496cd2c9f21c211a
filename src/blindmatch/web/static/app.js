// The reporting page's flow: questions, file picking and hashing, the preview of what is
// sent, sending (one report per file), the receipt, and checking or taking back a report.
// Plain DOM, no framework; every step is a <section> whose heading takes the focus when it
// is shown, so keyboard and screen-reader users land at its start.
//
// Nothing is lost on a refusal: each file keeps its fingerprints and its own sending state
// in memory, so "Try again" sends only what was not taken, without picking files again.
// Receipts live only in this page's memory and on the receipt step: never in storage, a
// cookie or a URL.

import { hashFiles } from "./hashing.js";
import { parseReceipts, reportStatus, sendReport, statusWords, withdrawReport } from "./intake.js";
import { MIN_PDQ_QUALITY, buildReports, fingerprintsOf, goodFrames, reportFor } from "./report.js";

const answers = { age: null, kind: null, shared: null };
const entries = []; // {file, row, outcome, thumbUrl, sending}
let hashing = 0;
let sendingNow = false;
let checked = []; // [{receipt: {reportId, secret}, report, problem}] of the check view
let confirming = null; // the index in `checked` a withdrawal waits to be confirmed for

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
  $("#send").addEventListener("click", startSending);
  $("#send-retry").addEventListener("click", sendAll);
  $("#send-receipt").addEventListener("click", showReceipt);
  $("#receipt-copy").addEventListener("click", copyReceipt);
  $("#receipt-unsent-back").addEventListener("click", () => show("send"));
  $("#check-go").addEventListener("click", check);
  $("#confirm-no").addEventListener("click", () => {
    show("check");
    confirming = null;
  });
  $("#confirm-yes").addEventListener("click", withdraw);
  document.body.dataset.ready = "true";
}

// ------------------------------------------------------------------------------- sending

function startSending() {
  const list = $("#send-list");
  list.replaceChildren();
  for (const entry of readyResults()) {
    if (!entry.sending) {
      entry.sending = { body: reportFor(answers.age, entry.outcome.result), state: "waiting" };
    }
    entry.sending.label = element("span", { className: "file-state" });
    list.append(
      element("li", {}, [
        thumbnail(entry),
        element("span", { className: "file-name", textContent: entry.file.name }),
        entry.sending.label,
      ]),
    );
    describeSending(entry);
  }
  show("send");
  sendAll();
}

function describeSending(entry) {
  const sending = entry.sending;
  const words = {
    waiting: "Waiting to be sent...",
    sending: "Sending...",
    sent: "Sent.",
  };
  sending.label.textContent = words[sending.state] || sending.message;
  sending.label.classList.toggle("error", sending.state === "refused" || sending.state === "failed");
}

function sendable() {
  return readyResults().filter((e) => e.sending && ["waiting", "failed"].includes(e.sending.state));
}

async function sendAll() {
  if (sendingNow) return;
  sendingNow = true;
  $("#send-retry").hidden = true;
  $("#send-receipt").hidden = true;
  $("#send-problem").hidden = true;
  $("#send-progress").value = 0;
  const all = readyResults().filter((e) => e.sending);
  const todo = sendable();
  for (const entry of todo) entry.sending.state = "waiting";
  for (const entry of todo) describeSending(entry);
  let done = 0;
  for (const entry of todo) {
    $("#send-status").textContent = `Sending ${done + 1} of ${todo.length}...`;
    entry.sending.state = "sending";
    describeSending(entry);
    const answer = await sendReport(entry.sending.body);
    if (answer.receipt) {
      entry.sending.state = "sent";
      entry.sending.receipt = answer.receipt;
    } else {
      const refusal = answer.refusal;
      entry.sending.state = refusal.done ? "done" : refusal.retry ? "failed" : "refused";
      entry.sending.message = refusal.message;
    }
    describeSending(entry);
    done += 1;
    $("#send-progress").value = done / todo.length;
    if (entry.sending.state === "failed") {
      // The same reason (offline, rate limit, a server problem) would refuse the rest too:
      // stop here, keep them waiting, and let the person try again.
      for (const rest of todo.slice(done)) {
        rest.sending.state = "failed";
        rest.sending.message = "Not sent yet.";
        describeSending(rest);
      }
      break;
    }
  }
  sendingNow = false;
  const sent = all.filter((e) => e.sending.state === "sent").length;
  const failed = all.filter((e) => e.sending.state === "failed");
  if (failed.length === 0 && sent === all.filter((e) => e.sending.state !== "done").length && sent > 0) {
    $("#send-status").textContent = `All sent: ${sent} of ${all.length}.`;
    showReceipt();
    return;
  }
  $("#send-status").textContent =
    `${sent} of ${all.length} sent` + (failed.length ? `, ${failed.length} not sent yet.` : ".");
  const reason = failed.find((e) => e.sending.message !== "Not sent yet.");
  $("#send-problem-text").textContent = failed.length
    ? (reason || failed[0]).sending.message
    : "Beside each file that was not sent, it says why.";
  $("#send-problem").hidden = false;
  $("#send-retry").hidden = failed.length === 0;
  $("#send-receipt").hidden = sent === 0;
  $("#send-problem").focus();
}

function receipts() {
  return readyResults()
    .filter((e) => e.sending && e.sending.state === "sent")
    .map((e) => e.sending.receipt);
}

function showReceipt() {
  const kept = receipts();
  $("#receipt-text").textContent = kept.join("\n");
  $("#receipt-count").textContent =
    kept.length === 1
      ? "Your report was sent. This is your receipt for it:"
      : `Your ${kept.length} reports were sent, one for each file. This is your receipt for all of them (one line each):`;
  $("#receipt-copied").textContent = "";
  const unsent = readyResults().filter((e) => e.sending && e.sending.state === "failed").length;
  $("#receipt-unsent-text").textContent =
    unsent === 1
      ? "1 file is not sent yet. When you are ready, go back and try again: you will get a receipt for it too."
      : `${unsent} files are not sent yet. When you are ready, go back and try again: you will get a receipt for them too.`;
  $("#receipt-unsent").hidden = unsent === 0;
  show("receipt");
}

async function copyReceipt() {
  const box = $("#receipt-text");
  let copied = false;
  try {
    await navigator.clipboard.writeText(box.textContent);
    copied = true;
  } catch {
    // No clipboard permission: select the receipt, so the person can copy it themselves.
    window.getSelection().selectAllChildren(box);
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
  }
  $("#receipt-copied").textContent = copied
    ? "Copied. Now paste it somewhere safe and private."
    : "Copying did not work here. Select the receipt above and copy it yourself.";
}

// ------------------------------------------------------------------ checking, taking back

function renderChecked() {
  const list = $("#check-list");
  list.replaceChildren();
  checked.forEach((item, index) => {
    const title = checked.length === 1 ? "Your report" : `Report ${index + 1} (line ${index + 1} of the receipt)`;
    const words = item.problem || statusWords(item.report);
    const children = [
      element("span", { className: "file-name", textContent: title }),
      element("span", { className: `file-state${item.problem ? " error" : ""}`, textContent: words }),
    ];
    if (item.report && item.report.status !== "withdrawn") {
      const button = element("button", { type: "button", textContent: "Take this report back" });
      if (checked.length > 1) button.setAttribute("aria-label", `Take report ${index + 1} back`);
      button.addEventListener("click", () => {
        confirming = index;
        show("confirm");
      });
      children.push(button);
    }
    list.append(element("li", {}, children));
  });
  $("#check-results").hidden = false;
}

async function check() {
  const found = parseReceipts($("#check-receipt").textContent);
  const problem = $("#check-problem");
  if (found.length === 0) {
    problem.textContent =
      "This does not look like a receipt. A receipt is one long line that starts with \u201cbm1.\u201d: paste all of it.";
    problem.hidden = false;
    $("#check-results").hidden = true;
    return;
  }
  problem.hidden = true;
  $("#check-go").disabled = true;
  checked = [];
  for (const receipt of found) checked.push({ receipt, ...(await reportStatus(receipt)) });
  $("#check-go").disabled = false;
  renderChecked();
  $("#check-results").focus();
}

async function withdraw() {
  const item = checked[confirming];
  confirming = null;
  if (!item) return;
  $("#confirm-yes").disabled = true;
  const answer = await withdrawReport(item.receipt);
  $("#confirm-yes").disabled = false;
  item.report = answer.report || item.report;
  item.problem = answer.problem || null;
  show("check");
  renderChecked();
  $("#check-results").focus();
}

wire();
