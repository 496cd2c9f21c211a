// PDQ of a video's frames, one per second, as far as this browser can play the video.
// Runs on the page (a <video> element cannot live in a worker) but only seeks and grabs
// frames: each frame is handed to a worker (a VideoFrame, or an ImageBitmap where there is
// no WebCodecs) and hashed there with vPDQ's colour conversion and luma. The video element
// is invisible and plays no sound.
//
// vPDQ (blindmatch.fingerprint.video) hashes frame n when n % int(fps) == 0, at time
// n / fps. A browser does not tell the frame rate, so the page seeks to whole seconds: the
// same frames when the rate is a whole number, the neighbouring frame otherwise (e.g.
// 29.97 fps: vPDQ takes frame 29 at 0.968 s, the page the frame shown at 1 s).

/** At most this many frames (the clearinghouse's limit): about 17 minutes of video. */
export const MAX_FRAMES = 1024;

function once(target, event, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out")), timeoutMs);
    const done = (handler) => (value) => {
      clearTimeout(timer);
      target.removeEventListener(event, ok);
      target.removeEventListener("error", failed);
      handler(value);
    };
    const ok = done(resolve);
    const failed = done(() => reject(new Error("the video could not be played")));
    target.addEventListener(event, ok);
    target.addEventListener("error", failed);
  });
}

/**
 * Seeks to `time` and resolves once the frame at that time is the one the element shows.
 * `seeked` alone can fire before the new frame is presented (a frame grabbed then may be
 * the previous one), so where the browser has requestVideoFrameCallback the page waits for
 * the presentation of the frame after the seek as well.
 */
async function seekTo(video, time) {
  const seeked = once(video, "seeked");
  const presented =
    "requestVideoFrameCallback" in video
      ? new Promise((resolve) => video.requestVideoFrameCallback(() => resolve()))
      : Promise.resolve();
  video.currentTime = time;
  await seeked;
  await Promise.race([presented, new Promise((resolve) => setTimeout(resolve, 3000))]);
}

/**
 * The frames at 0, 1, 2... seconds of `file`: [{second, pdq, quality}]. hashFrame(bitmap)
 * resolves to {pdq, quality}; onProgress(fraction) follows the seeking. Rejects when the
 * browser cannot play the video.
 */
export async function videoFrames(file, hashFrame, onProgress = () => {}) {
  const url = URL.createObjectURL(file);
  const video = document.createElement("video");
  video.muted = true;
  video.preload = "auto";
  video.playsInline = true;
  // In the document (frames are only presented for an element that is rendered), but not
  // visible, not in the accessibility tree, not clickable.
  video.className = "offstage";
  video.setAttribute("aria-hidden", "true");
  video.tabIndex = -1;
  document.body.append(video);
  const frames = [];
  try {
    const loaded = once(video, "loadeddata");
    video.src = url;
    await loaded;
    const duration = video.duration;
    if (!Number.isFinite(duration) || duration <= 0 || video.videoWidth === 0) {
      throw new Error("the video could not be played");
    }
    const count = Math.min(MAX_FRAMES, Math.ceil(duration));
    for (let second = 0; second < count; second++) {
      await seekTo(video, Math.min(second + 0.001, duration));
      // The decoded frame itself where WebCodecs exists (the worker converts its YUV planes
      // as vPDQ does), else the browser's RGB picture of it.
      const bitmap =
        typeof VideoFrame !== "undefined"
          ? new VideoFrame(video, { timestamp: Math.round(video.currentTime * 1e6) })
          : await createImageBitmap(video);
      frames.push({ second, ...(await hashFrame(bitmap)) });
      onProgress((second + 1) / count);
    }
    return frames;
  } finally {
    video.removeAttribute("src");
    video.load();
    video.remove();
    URL.revokeObjectURL(url);
  }
}
