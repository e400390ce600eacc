"""Prints scripts/perf's figures, each beside its same-run baseline: python3 perf-summary.py OUT.

Runs on Python 3.9 and later (no backslashes inside f-string braces: Debian 12 has 3.11).
A figure whose files are missing (ONLY=feed, a step that failed) is left out.
"""
import json
import os
import re
import sys

out = sys.argv[1]


def path(name):
    return os.path.join(out, name)


def load(name):
    try:
        with open(path(name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def text(name):
    try:
        with open(path(name)) as f:
            return f.read()
    except OSError:
        return None


def wrk(name):
    """Requests/s, p50 and p99 in ms, and the non-2xx count of a `wrk --latency` report."""
    t = text(name)
    if t is None:
        return None
    m = re.search(r"Requests/sec:\s+([\d.]+)", t)
    if not m:
        return None

    def pct(p):
        m = re.search(r"^\s+" + p + r"%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
        if not m:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    errors = re.search(r"Socket errors:.*", t)
    return {
        "rps": float(m.group(1)),
        "p50": pct("50"),
        "p99": pct("99"),
        "errors": int(bad.group(1)) if bad else 0,
        "socket": errors.group(0) if errors else "",
    }


def ratio(a, b):
    return a / b if b else float("nan")


def row(figure, value, baseline, goal):
    print("%-52s %-30s %-30s %s" % (figure, value, baseline, goal))


def op(report, name):
    for o in report["ops"]:
        if o["op"] == name:
            return o
    return None


print("%-52s %-30s %-30s %s" % ("figure", "value", "same-run baseline", "ratio (goal)"))

health, feed = wrk("wrk-health.txt"), wrk("wrk-feed.txt")
if health and feed:
    row(
        "home feed, wrk closed-loop, req/s",
        "%.0f (p50 %.2f p99 %.2f ms, %d non-2xx)" % (feed["rps"], feed["p50"], feed["p99"], feed["errors"]),
        "GET /health %.0f (p99 %.2f)" % (health["rps"], health["p99"]),
        "%.3f (>= 0.5)" % ratio(feed["rps"], health["rps"]),
    )

closed = load("feed-closed.json")
peer = load("redis-peer-p1.json")
peer16 = load("redis-peer-p16.json")
if closed:
    f, b = closed["main"]["ops"][0], closed["baseline"]["ops"][0]
    row(
        "home feed, chirp-load closed-loop, req/s",
        "%.0f (p50 %.2f p99 %.2f ms, %d err)" % (f["rps"], f["p50_ms"], f["p99_ms"], f["errors"]),
        "GET /health %.0f" % b["rps"],
        "%.3f (>= 0.5)" % ratio(f["rps"], b["rps"]),
    )
    if peer:
        p = peer["ops"][0]
        row(
            "home feed vs Redis timeline (LRANGE+MGET), req/s",
            "%.0f" % f["rps"],
            "Redis %.0f pages/s (p99 %.2f ms)" % (p["rps"], p["p99_ms"]),
            "%.3f (>= 1)" % ratio(f["rps"], p["rps"]),
        )
    if feed and peer:
        p = peer["ops"][0]
        row(
            "home feed (wrk) vs Redis timeline, req/s",
            "%.0f" % feed["rps"],
            "Redis %.0f pages/s" % p["rps"],
            "%.3f (>= 1)" % ratio(feed["rps"], p["rps"]),
        )
    if peer16:
        p = peer16["ops"][0]
        row(
            "  (Redis, 16 pages pipelined per connection)",
            "",
            "%.0f pages/s (p99 %.2f ms)" % (p["rps"], p["p99_ms"]),
            "%.3f" % ratio(f["rps"], p["rps"]),
        )

open70 = load("feed-open70.json")
if open70:
    f, b = open70["main"]["ops"][0], open70["baseline"]["ops"][0]
    row(
        "home feed, open-loop at 70%% (%.0f/s), p99 ms" % (open70["rate"] or 0),
        "%.2f (p99.9 %.2f, %d err)" % (f["p99_ms"], f["p999_ms"], f["errors"]),
        "GET /health p99 %.2f at that rate" % b["p99_ms"],
        "(< 10 ms)",
    )

status = load("status-after.json")
if status:
    for name, label in (("home_cache", "home-page cache"), ("tweet_cache", "hot-tweet cache")):
        c = status.get(name) or {}
        hits, misses = c.get("hits", 0), c.get("misses", 0)
        row(
            "  %s hit rate over the whole run" % label,
            "%.4f" % ratio(hits, hits + misses),
            "%d hits, %d misses" % (hits, misses),
            "",
        )

fan = load("fanout.json")
lpush = text("redis-lpush.txt")
if fan:
    m = re.search(r"LPUSH[^:]*:\s+([\d.]+) requests per second", lpush or "")
    base = float(m.group(1)) if m else float("nan")
    row(
        "fan-out, home rows/s synced",
        "%.0f (%d posts x %d followers)" % (fan["rows_per_sec"], fan["posts"], fan["author_followers"]),
        "redis-benchmark LPUSH -P 16: %.0f/s" % base,
        "%.3f (>= 1)" % ratio(fan["rows_per_sec"], base),
    )

for mix, label in (("seed", "seed mix (5:1)"), ("dsb", "DeathStarBench mix")):
    r = load(mix + ".json")
    if not r:
        continue
    every = op(r["main"], "all") or r["main"]["ops"][0]
    total, errors = every["rps"], every["errors"]
    b = r["baseline"]["ops"][0]
    rss = (r["server_rss_kib"] or 0) / 1024
    row(
        label + ", req/s",
        "%.0f (%d errors, RSS %.0f MiB)" % (total, errors, rss),
        "GET /health %.0f" % b["rps"],
        "%.3f (>= 0.5, 0 errors, RSS < 8 GiB)" % ratio(total, b["rps"]) if mix == "seed" else "%.3f" % ratio(total, b["rps"]),
    )
    for lag in r["fanout_lag"]:
        goal = "(< 1000 ms)" if lag["class"] != "celebrity" else "(at once)"
        row(
            "  %s: post to follower's feed, %s (%d followers)" % (mix, lag["class"], lag["author_followers"]),
            "p50 %.1f p99 %.1f max %.1f ms" % (lag["p50_ms"], lag["p99_ms"], lag["max_ms"]),
            "%d samples, %d not seen in 10 s" % (lag["samples"], lag["failed"]),
            goal,
        )
