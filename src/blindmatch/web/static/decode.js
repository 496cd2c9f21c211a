// Decoding an image file to the pixels PDQ hashes, with the browser's own decoders, as
// close as the browser allows to the Python front end (Pillow, EXIF orientation applied,
// converted to RGB, full resolution):
//   - colorSpaceConversion "none": no ICC profile or colour management moves the pixels
//     (Pillow ignores embedded profiles too);
//   - imageOrientation "from-image": the EXIF orientation is applied, as exif_transpose;
//   - premultiplyAlpha "none", and the canvas is read back unscaled, full size.
// A 2D canvas stores premultiplied alpha, so the colour of a translucent pixel comes back
// rounded (Pillow's convert("RGB") keeps it exact); fully opaque images are unaffected.
// Works in a page and in a worker (OffscreenCanvas). docs/web.md has the measured
// distance to the Python pipeline.

/** The largest image decoded (pixels), as the Python front end's default bound. */
export const MAX_PIXELS = 80_000_000;

/** Decodes a Blob; returns {pixels: Uint8ClampedArray RGBA, width, height}. */
export async function decodeImage(blob) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, {
      colorSpaceConversion: "none",
      premultiplyAlpha: "none",
      imageOrientation: "from-image",
    });
  } catch {
    throw new Error("this picture could not be opened");
  }
  try {
    const { width, height } = bitmap;
    if (width * height > MAX_PIXELS) throw new Error("this picture is too big to check here");
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext("2d", { willReadFrequently: true, colorSpace: "srgb" });
    context.drawImage(bitmap, 0, 0);
    const data = context.getImageData(0, 0, width, height, { colorSpace: "srgb" });
    return { pixels: data.data, width, height };
  } finally {
    bitmap.close();
  }
}
