// Starts the real `chirp` binary on a temp data dir and a free port for the browser tests.
import { spawn } from "node:child_process";
import { mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

/** Starts `chirp serve`; resolves to { base, stop, logPath } once it prints its address. */
export async function startChirp(bin) {
  const dir = mkdtempSync(join(tmpdir(), "chirp-e2e-"));
  const logPath = join(dir, "chirp.log");
  const log = openSync(logPath, "a");
  const child = spawn(
    bin,
    ["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--shards", "2", "--block-cache-mb", "16", "--tweet-cache-mb", "8", "--data", join(dir, "data")],
    { stdio: ["ignore", "pipe", log], env: { ...process.env, RUST_LOG: "info,chirp_server=debug" } },
  );
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const first = await Promise.race([
    new Promise((resolve) => createInterface({ input: child.stdout }).once("line", resolve)),
    exited.then((code) => Promise.reject(new Error(`chirp exited with ${code} before listening; see ${logPath}`))),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`chirp did not start in 30 s; see ${logPath}`)), 30_000)),
  ]);
  const prefix = "chirp listening on ";
  if (!first.startsWith(prefix)) throw new Error(`unexpected first line ${JSON.stringify(first)}`);
  const stop = async ({ keep = false } = {}) => {
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
    if (!keep) rmSync(dir, { recursive: true, force: true });
  };
  return { base: first.slice(prefix.length).trim(), stop, logPath };
}
