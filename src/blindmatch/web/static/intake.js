// The clearinghouse's intake API, on the page's own origin (blindmatch serve mounts the
// page beside /v1): send a report, read its status, withdraw it. Every answer the page
// cannot use becomes one kind sentence for the person, and says whether trying again can
// help. Requests carry no cookie, no referrer and nothing but the JSON body.
//
// The receipt. The service answers a report with its id (24 hex digits) and a secret
// receipt (256 bits, 43 URL-safe base64 characters); reading or withdrawing needs both (the
// id in the URL, the secret in the Blindmatch-Receipt header, never in a URL). The person
// keeps one string, `bm1.<report id>.<secret>`, exactly as `blindmatch report` prints it
// (blindmatch.client.reporting.Receipt): "." is in neither alphabet, so it splits one way
// only; the id is not secret and the secret is the service's receipt unchanged. Several
// reports (one per file) are kept as one text, one receipt per line; the check view reads
// every receipt it finds in whatever is pasted.

import { INTAKE_PATH } from "./report.js";

const RECEIPT = /(?:^|[^A-Za-z0-9_.-])bm1\.([0-9a-f]{24})\.([A-Za-z0-9_-]{22,128})(?![A-Za-z0-9_.-])/g;

/** The string a person keeps for one report. */
export function receiptFor(reportId, secret) {
  return `bm1.${reportId}.${secret}`;
}

/** Every receipt in `text` (pasted by a person: spaces, lines and other words are fine), as
 * {reportId, secret}, each report once. */
export function parseReceipts(text) {
  const found = new Map();
  for (const match of String(text).matchAll(RECEIPT)) found.set(match[1], match[2]);
  return Array.from(found, ([reportId, secret]) => ({ reportId, secret }));
}

const OFFLINE =
  "We could not reach the service. Check that you are online, then press \u201cTry again\u201d.";

function minutes(seconds) {
  const value = Math.max(1, Math.ceil(seconds / 60));
  return value === 1 ? "a minute" : `about ${value} minutes`;
}

/**
 * What to tell the person about a refused report: {message, retry} (retry: whether trying
 * again later can help), from the HTTP status, the service's error code and Retry-After.
 */
export function explainRefusal(status, code, retryAfter) {
  if (status === 0) return { message: OFFLINE, retry: true };
  if (status === 429) {
    const wait = retryAfter ? minutes(retryAfter) : "a while";
    return {
      message: `Too many reports came from this connection in the last hour. Please wait ${wait}, then press \u201cTry again\u201d.`,
      retry: true,
    };
  }
  if (status === 413) {
    return {
      message: "The fingerprints of this file are more than the service takes at once, so it could not be sent.",
      retry: false,
    };
  }
  if (status === 422 && code === "pdq_quality_too_low") {
    return {
      message: "This picture is too plain for a useful fingerprint, so the service did not take it.",
      retry: false,
    };
  }
  if (status === 409) {
    return {
      message: "This file was already reported (maybe by you, earlier), so it is already protected. There is nothing more to do for it.",
      retry: false,
      done: true,
    };
  }
  if (status >= 500) {
    return {
      message: "The service has a problem right now. Please wait a few minutes, then press \u201cTry again\u201d.",
      retry: true,
    };
  }
  return { message: "The service did not accept the fingerprints of this file.", retry: false };
}

async function call(path, init) {
  let response;
  try {
    response = await fetch(path, {
      ...init,
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
      redirect: "error",
    });
  } catch {
    return { status: 0, body: null, retryAfter: null };
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const retryAfter = Number(response.headers.get("Retry-After")) || null;
  return { status: response.status, body, retryAfter };
}

function codeOf(body) {
  return body && body.error ? body.error.code : null;
}

/**
 * POST one report. Resolves to {receipt} (the string to keep) or {refusal: {message,
 * retry, done?}}; never rejects.
 */
export async function sendReport(body) {
  const answer = await call(INTAKE_PATH, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (answer.status === 201 && answer.body && answer.body.report_id && answer.body.receipt) {
    return { receipt: receiptFor(answer.body.report_id, answer.body.receipt) };
  }
  return { refusal: explainRefusal(answer.status, codeOf(answer.body), answer.retryAfter) };
}

const WRONG_RECEIPT =
  "We could not find a report for this receipt. Check that you copied all of it, with nothing missing.";

async function byReceipt(method, { reportId, secret }) {
  const answer = await call(`${INTAKE_PATH}/${reportId}`, {
    method,
    headers: { "Blindmatch-Receipt": secret },
  });
  if (answer.status === 200 && answer.body && answer.body.status) return { report: answer.body };
  if (answer.status === 401 || answer.status === 404) return { problem: WRONG_RECEIPT };
  if (answer.status === 409 && codeOf(answer.body) === "already_withdrawn") {
    return { report: { report_id: reportId, status: "withdrawn", withdrawn_at: null } };
  }
  return { problem: explainRefusal(answer.status, codeOf(answer.body), answer.retryAfter).message };
}

/** The status of one report: {report: ReportStatus} or {problem: a sentence}. */
export function reportStatus(receipt) {
  return byReceipt("GET", receipt);
}

/** Withdraw one report: {report: ReportStatus} or {problem: a sentence}. */
export function withdrawReport(receipt) {
  return byReceipt("DELETE", receipt);
}

/** A report's status in plain words. */
export function statusWords(report) {
  const when = report.withdrawn_at ? new Date(report.withdrawn_at * 1000).toLocaleDateString() : null;
  switch (report.status) {
    case "pending":
      return "Received. It will be shared with the websites that take part very soon.";
    case "published":
      return "Active. Websites that take part are looking for copies, so they can take them down.";
    case "withdrawn":
      return `Taken back${when ? ` on ${when}` : ""}. Websites no longer look for it.`;
    case "suspended":
      return "On hold while someone checks it. You do not need to do anything.";
    case "removed":
      return "Closed by the service. Websites no longer look for it.";
    default:
      return "Received.";
  }
}
