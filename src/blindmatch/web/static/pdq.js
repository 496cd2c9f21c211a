// PDQ in the browser: pdq.wasm is the project's C core (fingerprint/_pdq_core.c) built by
// `make wasm`, so on the same RGB(A) array the hash and quality are bit-identical to
// blindmatch.fingerprint.pdq.pdq_from_rgb. Works in a page and in a worker.

let modulePromise = null;

function instance() {
  if (modulePromise === null) {
    modulePromise = fetch(new URL("pdq.wasm", import.meta.url))
      .then((response) => {
        if (!response.ok) throw new Error("the PDQ module could not be loaded");
        return response.arrayBuffer();
      })
      .then((bytes) => WebAssembly.instantiate(bytes, {}))
      .then((result) => result.instance.exports);
  }
  return modulePromise;
}

const ERRORS = { [-1]: "the image is too large for this device's memory", [-2]: "bad image size" };

function hex(bytes) {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/**
 * PDQ of an image given as rows x cols pixels of `channels` (3 or 4) bytes, row by row
 * (ImageData.data is channels = 4; a 4th channel is ignored, as in the Python core).
 * With videoFrame true, the luma is vPDQ's (float32, as blindmatch.fingerprint.video),
 * else the image pipeline's (pdq_from_rgb). Returns {pdq: 64 hex digits, quality: 0..100}.
 */
export async function pdqFromPixels(pixels, rows, cols, channels, { videoFrame = false } = {}) {
  const wasm = await instance();
  const length = rows * cols * channels;
  if (pixels.length !== length) throw new Error("pixel array and size disagree");
  try {
    const input = wasm.pdq_alloc(length);
    const out = wasm.pdq_alloc(36);
    if (input === 0 || out === 0) throw new Error(ERRORS[-1]);
    new Uint8Array(wasm.memory.buffer, input, length).set(pixels);
    const hash = videoFrame ? wasm.pdq_hash_frame : wasm.pdq_hash;
    const status = hash(input, rows, cols, channels, out);
    if (status !== 0) throw new Error(ERRORS[status] || "PDQ failed");
    const result = new Uint8Array(wasm.memory.buffer, out, 36);
    return { pdq: hex(result.subarray(0, 32)), quality: result[32] };
  } finally {
    wasm.pdq_reset();
  }
}
