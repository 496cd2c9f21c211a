// The intake requests the page sends: POST /v1/reports with the clearinghouse's JSON body
// (blindmatch.service.models.IntakeRequest): {content_kind: "image" | "video",
// age_attestation: "minor" | "adult", fingerprints: [...] (1..64)}. Fingerprints only:
// no file name, size, thumbnail or anything else about the files.

/** The intake endpoint, on the page's own origin. */
export const INTAKE_PATH = "/v1/reports";

/** The service refuses PDQ below this quality (it matches unrelated pictures). */
export const MIN_PDQ_QUALITY = 50;

/** Fingerprints per request, the service's limit (a file has at most four). */
export const MAX_FINGERPRINTS = 64;

/** Frames per vPDQ fingerprint, the service's limit. */
export const MAX_FRAMES = 1024;

/** The video frames worth sending: those PDQ trusts (quality >= 50). */
export function goodFrames(result) {
  return (result.frames || []).filter((f) => f.quality >= MIN_PDQ_QUALITY).slice(0, MAX_FRAMES);
}

/** The fingerprints of one hashed file, in the service's shapes. */
export function fingerprintsOf(result) {
  const out = [];
  if (result.kind === "image" && result.quality >= MIN_PDQ_QUALITY) {
    out.push({ signal: "pdq", hash: result.pdq, quality: result.quality });
  }
  const frames = result.kind === "video" ? goodFrames(result) : [];
  if (frames.length > 0) {
    out.push({ signal: "vpdq", frames: frames.map((f) => ({ hash: f.pdq, quality: f.quality })) });
  }
  out.push({ signal: "md5", hash: result.md5 });
  out.push({ signal: "sha256", hash: result.sha256 });
  return out;
}

/**
 * The request body for one hashed file: one report per file, as the service expects (a
 * report is one piece of content: a platform's match names it, a withdrawal or a dispute
 * acts on it, and the same file reported twice is recognised as a duplicate). A file's
 * fingerprints are at most four, far below MAX_FINGERPRINTS.
 */
export function reportFor(ageAttestation, result) {
  return { content_kind: result.kind, age_attestation: ageAttestation, fingerprints: fingerprintsOf(result) };
}

/** The request bodies for `results` (hashed files), in order: one per file. */
export function buildReports(ageAttestation, results) {
  return results.map((result) => reportFor(ageAttestation, result));
}
