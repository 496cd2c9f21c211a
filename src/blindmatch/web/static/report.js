// The intake requests the page sends: POST /v1/reports with the clearinghouse's JSON body
// (blindmatch.service.models.IntakeRequest): {content_kind: "image" | "video",
// age_attestation: "minor" | "adult", fingerprints: [...] (1..64)}. Fingerprints only:
// no file name, size, thumbnail or anything else about the files.

/** The intake endpoint, on the page's own origin. */
export const INTAKE_PATH = "/v1/reports";

/** The service refuses PDQ below this quality (it matches unrelated pictures). */
export const MIN_PDQ_QUALITY = 50;

/** Fingerprints per request, the service's limit. */
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
 * The request bodies for `results` (hashed files): one report per kind of content, split
 * so that none carries more than MAX_FINGERPRINTS; a file's fingerprints stay together.
 */
export function buildReports(ageAttestation, results) {
  const bodies = [];
  for (const kind of ["image", "video"]) {
    let current = null;
    for (const result of results.filter((r) => r.kind === kind)) {
      const prints = fingerprintsOf(result);
      if (current === null || current.fingerprints.length + prints.length > MAX_FINGERPRINTS) {
        current = { content_kind: kind, age_attestation: ageAttestation, fingerprints: [] };
        bodies.push(current);
      }
      current.fingerprints.push(...prints);
    }
  }
  return bodies;
}
