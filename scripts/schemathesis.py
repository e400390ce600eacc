"""Drives one Schemathesis run against a real `chirp` node; see scripts/schemathesis."""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "target" / "schemathesis-venv"
BASELINE = ROOT / "scripts" / "schemathesis-baseline.json"
BIN = Path(os.environ.get("CHIRP_BIN", ROOT / "target" / "debug" / "chirp"))
SECONDS = int(os.environ.get("CHIRP_SCHEMATHESIS_SECONDS", "90"))
SEED = int(os.environ.get("CHIRP_SCHEMATHESIS_SEED", "20240611"))


def call(base, method, path, body=None, token=None):
    """A JSON request; returns (status, parsed body or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, None


def start(data_dir, log):
    """Starts the node; returns the process and its public base URL."""
    if not BIN.is_file():
        sys.exit(f"schemathesis: {BIN} is missing; build it first (cargo build -p chirp-server)")
    proc = subprocess.Popen(
        # Rate limits off: every request comes from one address and a few users, so they would
        # answer most of the run with 429 (documented, but it stops the stateful chains).
        # They have tests of their own (server/tests/security.rs).
        [str(BIN), "serve", "--data", str(data_dir), "--listen", "127.0.0.1:0",
         "--admin-listen", "127.0.0.1:0", "--no-sync",
         "--login-failures-per-account", "0", "--login-failures-per-address", "0",
         "--signups-per-address-per-hour", "0", "--writes-per-user-per-minute", "0"],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )
    for line in proc.stdout:
        if line.startswith("chirp listening on "):
            return proc, line.split()[-1].rstrip("/")
    proc.wait()
    sys.exit(f"schemathesis: chirp exited ({proc.returncode}) before listening; see {log.name}")


def check_baseline():
    """Every accepted failure must say why it is accepted."""
    doc = json.loads(BASELINE.read_text())
    unexplained = [e.get("id") for e in doc["entries"] if not e.get("reason", "").strip()]
    if unexplained:
        sys.exit(f"schemathesis: baseline entries without a reason: {unexplained}")
    return len(doc["entries"])


def main():
    accepted = check_baseline()
    report = ROOT / "target" / "schemathesis-report"
    with tempfile.TemporaryDirectory(prefix="chirp-schemathesis-") as tmp:
        log = open(Path(tmp) / "chirp.log", "w")
        proc, base = start(Path(tmp) / "data", log)
        try:
            login = {"handle": "fuzzer", "password": "correct horse battery"}
            status, _ = call(base, "POST", "/users", login)
            assert status == 201, f"sign-up: {status}"
            status, session = call(base, "POST", "/sessions", login)
            assert status == 200, f"log-in: {status}"
            env = dict(os.environ,
                       SCHEMATHESIS_HOOKS=str(ROOT / "scripts" / "schemathesis_hooks.py"),
                       CHIRP_FUZZ_BASE=base, CHIRP_FUZZ_TOKEN=session["token"],
                       CHIRP_FUZZ_LOGIN=json.dumps(login))
            cmd = [
                str(VENV / "bin" / "schemathesis"), "run", f"{base}/openapi.json",
                "--checks", "all",
                "--seed", str(SEED),
                "--max-time", str(SECONDS),
                "--baseline", str(BASELINE),
                "--report", "junit,ndjson",
                "--report-dir", str(report),
                "--no-color",
                *sys.argv[1:],
            ]
            print(f"schemathesis: {' '.join(cmd)}", flush=True)
            print(f"schemathesis: against {base}, seed {SEED}, "
                  f"{SECONDS}s, {accepted} accepted failures", flush=True)
            started = time.monotonic()
            result = subprocess.run(cmd, cwd=tmp, env=env)
            elapsed = time.monotonic() - started
            # The node must have survived the run and still serve.
            alive = proc.poll() is None and call(base, "GET", "/health")[0] == 200
            print(f"schemathesis: exit {result.returncode} after {elapsed:.0f}s; "
                  f"node healthy: {alive}", flush=True)
            if not alive:
                log.flush()
                sys.stderr.write((Path(tmp) / "chirp.log").read_text()[-4000:])
                return 1
            return result.returncode
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
