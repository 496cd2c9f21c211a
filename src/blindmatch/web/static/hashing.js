// Hashing many files with a small pool of workers (hash-worker.js): each file reports
// progress and then its fingerprints or a plain message, and one file's failure never
// stops the others. A video's frames are grabbed on the page (video.js) and hashed by the
// same worker.

import { videoFrames } from "./video.js";

const POOL = Math.max(1, Math.min(2, navigator.hardwareConcurrency || 1));
const BROKEN = "Something went wrong with this file, so it was left out.";

class Channel {
  constructor() {
    this.worker = new Worker(new URL("hash-worker.js", import.meta.url), { type: "module" });
  }

  /** Posts `message` and resolves to the worker's final reply ({result}, {frame}, {error}). */
  call(message, transfer = [], onProgress = () => {}) {
    return new Promise((resolve) => {
      this.worker.onmessage = (event) => {
        if ("progress" in event.data) onProgress(event.data.progress);
        else resolve(event.data);
      };
      this.worker.onerror = (event) => {
        event.preventDefault();
        this.worker.terminate();
        this.worker = new Worker(new URL("hash-worker.js", import.meta.url), { type: "module" });
        resolve({ error: BROKEN });
      };
      this.worker.postMessage(message, transfer);
    });
  }
}

async function hashVideoFrames(channel, index, file, onUpdate) {
  const hashFrame = async (bitmap) => {
    const reply = await channel.call({ id: index, bitmap }, [bitmap]);
    if (!reply.frame) throw new Error(reply.error);
    return reply.frame;
  };
  try {
    return await videoFrames(file, hashFrame, (done) => onUpdate(index, { progress: 0.6 + 0.4 * done }));
  } catch {
    return null; // this browser cannot play it: the file's MD5/SHA-256 still go
  }
}

/**
 * Fingerprints `files` (File objects). onUpdate(index, {progress} | {result} | {error}) is
 * called as each file moves on. Resolves to [{result} | {error}] in the files' order.
 */
export function hashFiles(files, onUpdate = () => {}) {
  const outcomes = new Array(files.length);
  let next = 0;
  const run = async () => {
    const channel = new Channel();
    while (next < files.length) {
      const index = next++;
      const reply = await channel.call({ id: index, file: files[index] }, [], (progress) =>
        onUpdate(index, { progress }),
      );
      let outcome = reply.result ? { result: reply.result } : { error: reply.error || BROKEN };
      if (outcome.result && outcome.result.kind === "video") {
        outcome.result.frames = await hashVideoFrames(channel, index, files[index], onUpdate);
      }
      outcomes[index] = outcome;
      onUpdate(index, outcome);
    }
    channel.worker.terminate();
  };
  const pool = [];
  for (let i = 0; i < Math.min(POOL, files.length); i++) pool.push(run());
  return Promise.all(pool).then(() => outcomes);
}
