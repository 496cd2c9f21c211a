// What a file is, from its first bytes (never its name), as blindmatch's front end does:
// "image" for the picture formats a browser decodes, "video" for video containers, null
// for anything else. Images the Python front end reads but browsers do not (TIFF, JPEG
// 2000, QOI) are "unsupported-image", so the page can say so plainly.

function startsWith(head, bytes, offset = 0) {
  if (head.length < offset + bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if (head[offset + i] !== bytes[i]) return false;
  return true;
}

const ascii = (text) => Array.from(text, (c) => c.charCodeAt(0));
const AVIF_BRANDS = new Set(["avif", "avis"]);
const NOT_VIDEO_BRANDS = new Set([
  "heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs", "mif1", "msf1",
  "M4A ", "M4B ", "M4P ", "F4A ", "F4B ",
]);
const QUICKTIME_ATOMS = new Set(["moov", "mdat", "wide", "free", "skip", "pnot"]);
const text = (head, start, end) => String.fromCharCode(...head.subarray(start, end));

/** The number of leading bytes sniffKind needs. */
export const SNIFF_BYTES = 512;

/** "image", "video", "unsupported-image" or null, from a file's first bytes. */
export function sniffKind(head) {
  if (
    startsWith(head, [0xff, 0xd8, 0xff]) ||
    startsWith(head, [0x89, ...ascii("PNG\r\n\x1a\n")]) ||
    startsWith(head, ascii("GIF87a")) ||
    startsWith(head, ascii("GIF89a")) ||
    (startsWith(head, ascii("RIFF")) && startsWith(head, ascii("WEBP"), 8)) ||
    (startsWith(head, ascii("BM")) && head.length >= 18) ||
    startsWith(head, [0, 0, 1, 0])
  ) {
    return "image";
  }
  if (
    startsWith(head, ascii("II*\0")) ||
    startsWith(head, ascii("MM\0*")) ||
    startsWith(head, [0, 0, 0, 0x0c, ...ascii("jP  \r\n\x87\n")]) ||
    startsWith(head, [0xff, 0x4f, 0xff, 0x51]) ||
    startsWith(head, ascii("qoif"))
  ) {
    return "unsupported-image";
  }
  if (head.length >= 12 && text(head, 4, 8) === "ftyp") {
    const major = text(head, 8, 12);
    const size = (head[0] << 24) | (head[1] << 16) | (head[2] << 8) | head[3];
    const brands = new Set([major]);
    for (let i = 16; i + 4 <= Math.min(head.length, Math.max(size, 16)); i += 4) {
      brands.add(text(head, i, i + 4));
    }
    if ([...brands].some((b) => AVIF_BRANDS.has(b))) return "image";
    if (NOT_VIDEO_BRANDS.has(major)) return null;
    return "video";
  }
  if (head.length >= 8 && QUICKTIME_ATOMS.has(text(head, 4, 8))) return "video";
  if (startsWith(head, [0x1a, 0x45, 0xdf, 0xa3])) return "video"; // Matroska, WebM
  if (startsWith(head, ascii("RIFF")) && ["AVI ", "AVIX"].includes(text(head, 8, 12))) {
    return "video";
  }
  return null;
}
