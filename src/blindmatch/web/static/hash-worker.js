// The hashing worker: one file at a time, off the page's main thread, so large files and
// many files never freeze the page. The file's bytes are read here and never leave the
// device: only fingerprints are posted back.
//
// In:  {id, file}
// Out: {id, progress: 0..1}* then {id, result: {kind, md5, sha256, size, pdq?, quality?,
//      width?, height?}} or {id, error: a plain sentence for the person}.
// In:  {id, bitmap} (a video frame the page grabbed, a VideoFrame, see video.js)
// Out: {id, frame: {pdq, quality}} or {id, error}.

import { decodeImage } from "./decode.js";
import { Md5 } from "./md5.js";
import { pdqFromPixels } from "./pdq.js";
import { SNIFF_BYTES, sniffKind } from "./sniff.js";
import { YUV_FORMATS, rgbaFromYuv } from "./yuv.js";

const CHUNK = 4 * 1024 * 1024;

/** Files larger than this are not read (SHA-256 in WebCrypto needs the whole file). */
const MAX_FILE_BYTES = 1024 * 1024 * 1024;

class Refusal extends Error {}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function fingerprint(id, file) {
  const head = new Uint8Array(await file.slice(0, SNIFF_BYTES).arrayBuffer());
  const kind = sniffKind(head);
  if (kind === null) throw new Refusal("This file is not a picture or a video, so it was left out.");
  if (kind === "unsupported-image") {
    throw new Refusal("This kind of picture cannot be opened in a browser, so it was left out.");
  }
  if (file.size > MAX_FILE_BYTES) throw new Refusal("This file is too big to check here (over 1 GB).");
  const bytes = new Uint8Array(await file.arrayBuffer());
  const md5 = new Md5();
  for (let offset = 0; offset < bytes.length; offset += CHUNK) {
    md5.update(bytes.subarray(offset, offset + CHUNK));
    postMessage({ id, progress: (0.5 * Math.min(bytes.length, offset + CHUNK)) / bytes.length });
  }
  const sha256 = hex(await crypto.subtle.digest("SHA-256", bytes));
  const result = { kind, size: bytes.length, md5: md5.hex(), sha256 };
  postMessage({ id, progress: 0.6 });
  if (kind === "image") {
    let image;
    try {
      image = await decodeImage(file);
    } catch (error) {
      throw new Refusal("This picture could not be opened, so it was left out.");
    }
    postMessage({ id, progress: 0.8 });
    const { pdq, quality } = await pdqFromPixels(image.pixels, image.height, image.width, 4);
    Object.assign(result, { pdq, quality, width: image.width, height: image.height });
  }
  return result;
}

async function hashFrame(bitmap) {
  try {
    if (typeof VideoFrame !== "undefined" && bitmap instanceof VideoFrame && YUV_FORMATS.has(bitmap.format)) {
      // The decoder's own planes, converted as vPDQ does (yuv.js).
      const rect = bitmap.visibleRect;
      const bytes = new Uint8Array(bitmap.allocationSize({ rect }));
      const layout = await bitmap.copyTo(bytes, { rect });
      const fullRange = Boolean(bitmap.colorSpace && bitmap.colorSpace.fullRange);
      const rgba = rgbaFromYuv(bytes, bitmap.format, layout, rect.width, rect.height, fullRange);
      return await pdqFromPixels(rgba, rect.height, rect.width, 4, { videoFrame: true });
    }
    // Any other frame (an ImageBitmap, or a frame in a format yuv.js does not read): the
    // browser's own conversion.
    const width = bitmap.displayWidth || bitmap.width;
    const height = bitmap.displayHeight || bitmap.height;
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext("2d", { willReadFrequently: true, colorSpace: "srgb" });
    context.drawImage(bitmap, 0, 0);
    const data = context.getImageData(0, 0, width, height, { colorSpace: "srgb" });
    return await pdqFromPixels(data.data, height, width, 4, { videoFrame: true });
  } finally {
    bitmap.close();
  }
}

onmessage = async (event) => {
  const { id, file, bitmap } = event.data;
  if (bitmap) {
    try {
      postMessage({ id, frame: await hashFrame(bitmap) });
    } catch {
      postMessage({ id, error: "This video frame could not be read." });
    }
    return;
  }
  try {
    postMessage({ id, result: await fingerprint(id, file) });
  } catch (error) {
    const message =
      error instanceof Refusal ? error.message : "Something went wrong with this file, so it was left out.";
    postMessage({ id, error: message });
  }
};
