// Hashing many files with a small pool of workers (hash-worker.js): each file reports
// progress and then its fingerprints or a plain message, and one file's failure never
// stops the others.

const POOL = Math.max(1, Math.min(2, navigator.hardwareConcurrency || 1));

/**
 * Fingerprints `files` (File objects). onUpdate(index, {progress} | {result} | {error}) is
 * called as each file moves on. Resolves to [{result} | {error}] in the files' order.
 */
export function hashFiles(files, onUpdate = () => {}) {
  const outcomes = new Array(files.length);
  let next = 0;
  const workers = [];
  const runWorker = () =>
    new Promise((resolve) => {
      const worker = new Worker(new URL("hash-worker.js", import.meta.url), { type: "module" });
      workers.push(worker);
      const take = () => {
        if (next >= files.length) {
          worker.terminate();
          resolve();
          return;
        }
        const index = next++;
        worker.onmessage = (event) => {
          const message = event.data;
          if ("progress" in message) {
            onUpdate(index, { progress: message.progress });
            return;
          }
          outcomes[index] = "result" in message ? { result: message.result } : { error: message.error };
          onUpdate(index, outcomes[index]);
          take();
        };
        worker.onerror = () => {
          outcomes[index] = { error: "Something went wrong with this file, so it was left out." };
          onUpdate(index, outcomes[index]);
          worker.terminate();
          resolve(runWorker());
        };
        worker.postMessage({ id: index, file: files[index] });
      };
      take();
    });
  const pool = [];
  for (let i = 0; i < Math.min(POOL, files.length); i++) pool.push(runWorker());
  return Promise.all(pool).then(() => outcomes);
}
