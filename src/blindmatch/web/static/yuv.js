// YUV video frames to RGB the way blindmatch's vPDQ converts them (video.py, frame_to_rgb):
// the legacy BT.601 matrix whatever the stream's colour tags say, limited range unless the
// stream is full range, chroma upsampled by nearest neighbour (swscale's SWS_POINT). A
// browser's own conversion (canvas, ImageBitmap) follows the tags instead, e.g. BT.709 for
// HD video, which moves a PDQ hash by 10-20 bits; converting the decoder's own planes here
// keeps it within a few.

function clamp(value) {
  return value < 0 ? 0 : value > 255 ? 255 : Math.round(value);
}

/**
 * RGBA pixels from a VideoFrame's planes, copied out with copyTo: `format` "I420", "I420A"
 * or "NV12", `layout` the plane offsets and strides copyTo returned, `fullRange` the
 * frame's colour range. Returns a Uint8ClampedArray of width x height x 4.
 */
export function rgbaFromYuv(bytes, format, layout, width, height, fullRange) {
  const out = new Uint8ClampedArray(width * height * 4);
  const [yPlane, uPlane, vPlane] = layout;
  const nv12 = format === "NV12";
  const scale = fullRange ? 1 : 255 / 219;
  const chromaScale = fullRange ? 1 : 255 / 224;
  const offset = fullRange ? 0 : 16;
  for (let y = 0; y < height; y++) {
    const yRow = yPlane.offset + y * yPlane.stride;
    const cRow = (y >> 1) * uPlane.stride;
    const vRow = nv12 ? 0 : (y >> 1) * vPlane.stride;
    for (let x = 0; x < width; x++) {
      const luma = (bytes[yRow + x] - offset) * scale;
      let u, v;
      if (nv12) {
        const at = uPlane.offset + cRow + (x >> 1) * 2;
        u = bytes[at];
        v = bytes[at + 1];
      } else {
        u = bytes[uPlane.offset + cRow + (x >> 1)];
        v = bytes[vPlane.offset + vRow + (x >> 1)];
      }
      const d = (u - 128) * chromaScale;
      const e = (v - 128) * chromaScale;
      const o = (y * width + x) * 4;
      out[o] = clamp(luma + 1.402 * e);
      out[o + 1] = clamp(luma - 0.344136 * d - 0.714136 * e);
      out[o + 2] = clamp(luma + 1.772 * d);
      out[o + 3] = 255;
    }
  }
  return out;
}

/** The planar formats rgbaFromYuv reads. */
export const YUV_FORMATS = new Set(["I420", "I420A", "NV12"]);
