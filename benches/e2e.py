#!/usr/bin/env python3
"""End-to-end benchmarks of cio-import against its own sandbox, on this machine.

    python3 benches/e2e.py [ceiling] [limit] [memory] [anon] [resync] [inspect] [side] [pacing]   (default: all but anon and pacing)

`pacing` (issue 11's goals, closed loop side by side with --fixed-rate, about 10 minutes) runs
each case for a bounded time, stops the importer with SIGINT and reads its summary.

`anon` (peak anonymous memory, RssAnon, with --state at 10M people and with requests stalled
for 2 minutes) takes about 10 minutes; set CIO_BENCH_OLD to another build of cio-import to
measure it side by side.

Builds the release binary and the row generator, runs each scenario, prints a Markdown table
per scenario and writes every figure to target/bench/results.json. Only loopback is used.
The side-by-side scenario needs target/pyvenv with `customerio` and `requests`
(.ci/run or `cargo test` creates it)."""
import json
import os
import platform
import signal
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench")
BIN = os.path.join(ROOT, "target", "release", "cio-import")
GEN = os.path.join(ROOT, "target", "release", "examples", "gen_customers")
PY = os.path.join(ROOT, "target", "pyvenv", "bin", "python")
ENV = dict(os.environ, CUSTOMERIO_SITE_ID="bench-site", CUSTOMERIO_TRACK_API_KEY="bench-key")
ENV.pop("RUST_LOG", None)
results = {}


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, executable="/bin/bash", **kw)


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = int(open("/proc/meminfo").readline().split()[1])
    return {"cpus": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem_kb / 2**20, 1),
            "kernel": platform.release()}


class Sandbox:
    def __init__(self, *args, tls=False):
        self.cert = os.path.join(OUT, "sandbox.pem") if tls else None
        extra = ["--tls", "--cert-out", self.cert] if tls else []
        self.proc = subprocess.Popen([BIN, "sandbox", "--port", "0", *args, *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=ENV, text=True)
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http"), self.url

    def stats(self):
        ctx = ssl.create_default_context(cafile=self.cert) if self.cert else None
        with urllib.request.urlopen(self.url + "/__sandbox/stats", context=ctx) as r:
            return json.load(r)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)


def cio_import(args, stdin_cmd=None):
    """Runs an import; returns (summary, peak RSS in MiB)."""
    summary = os.path.join(OUT, "summary.json")
    rss = os.path.join(OUT, "rss.txt")
    run = f"/usr/bin/time -f %M -o {rss} {BIN} import {args} -q --summary {summary}"
    run += f" --rejects {OUT}/rejects.csv --errors {OUT}/errors.csv"
    cmd = f"set -o pipefail; {stdin_cmd} | {run}" if stdin_cmd else run
    subprocess.run(cmd, shell=True, executable="/bin/bash", env=ENV, cwd=OUT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(summary) as fh:
        s = json.load(fh)
    with open(rss) as fh:
        peak = int(fh.read().split()[-1]) / 1024
    return s, round(peak, 1)


def table(title, header, rows):
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")


def ceiling():
    path = os.path.join(OUT, "1m.csv")
    if not os.path.exists(path):
        sh(f"{GEN} 1000000 csv > {path}")
    sb = Sandbox("--limit", "0", "--discard")
    runs = []
    for _ in range(5):
        s, rss = cio_import(f"{path} --endpoint {sb.url} --rate 0")
        assert s["sent"] == 1_000_000, s
        runs.append((s["rows_per_s"], s["elapsed_s"], s["requests"], s["mean_batch_rows"], rss))
    v1, v1_rss = cio_import(f"{path} --endpoint {sb.url} --rate 0 --api v1 --concurrency 64")
    assert v1["sent"] == 1_000_000, v1
    sb.stop()
    med = sorted(runs)[len(runs) // 2]
    results["ceiling"] = {"batch_runs_rows_per_s": [r[0] for r in runs],
                          "batch_median_rows_per_s": med[0], "batch_requests": med[2],
                          "batch_mean_batch_rows": med[3], "batch_peak_rss_mib": med[4],
                          "v1_rows_per_s": v1["rows_per_s"], "v1_elapsed_s": round(v1["elapsed_s"], 1),
                          "v1_peak_rss_mib": v1_rss}
    table("End-to-end ceiling: 1,000,000 rows (223 MB CSV), sandbox without limit or latency",
          ["api", "rows/s", "elapsed", "requests", "mean batch rows", "peak RSS"],
          [["batch (median of 5)", f"{med[0]:,.0f}", f"{med[1]:.2f} s", med[2], med[3], f"{med[4]} MiB"],
           ["v1 (concurrency 64)", f"{v1['rows_per_s']:,.0f}", f"{v1['elapsed_s']:.1f} s",
            v1["requests"], "-", f"{v1_rss} MiB"]])
    print(f"\nbatch runs (rows/s): {[round(r[0]) for r in runs]}")


def at_limit():
    rows = []
    for api, n in [("batch", 2_400_000), ("v1", 2_000)]:
        sb = Sandbox("--limit", "100", "--burst", "10", "--latency-ms", "200", "--discard")
        s, _ = cio_import(f"- --format csv --endpoint {sb.url} --api {api}", f"{GEN} {n} csv")
        st = sb.stats()
        sb.stop()
        req_s = s["requests"] / s["elapsed_s"]
        r429 = st["by_status"].get("429", 0)
        goal_rows = 0.9 * 100 * (s["mean_batch_rows"] or 1)
        results[f"limit_{api}"] = {"rows": n, "requests": s["requests"], "elapsed_s": s["elapsed_s"],
                                   "requests_per_s": round(req_s, 2),
                                   "max_requests_in_1s": st["max_requests_per_second"],
                                   "answers_429": r429, "rows_per_s": s["rows_per_s"],
                                   "mean_batch_rows": s["mean_batch_rows"], "sent": s["sent"]}
        rows.append([api, f"{n:,}", s["requests"], f"{s['elapsed_s']:.1f} s", f"{req_s:.1f}",
                     st["max_requests_per_second"], r429, f"{s['rows_per_s']:,.0f}",
                     s["mean_batch_rows"] or "-",
                     f"{s['rows_per_s'] / (100 * (s['mean_batch_rows'] or 1)):.0%}"])
        assert s["sent"] == n, s
    table("At the limit: sandbox at 100 req/s (burst 10) with 200 ms latency",
          ["api", "rows", "requests", "elapsed", "req/s", "max in 1 s", "429s", "rows/s",
           "mean batch rows", "rows/s vs 100 x batch"], rows)


def memory():
    rows = []
    sb = Sandbox("--limit", "0", "--discard")
    for n in [1_000_000, 10_000_000]:
        s, rss = cio_import(f"- --format csv --endpoint {sb.url}", f"{GEN} {n} csv")
        assert s["sent"] == n, s
        results[f"memory_{n}"] = {"peak_rss_mib": rss, "rows_per_s": s["rows_per_s"],
                                  "elapsed_s": s["elapsed_s"]}
        rows.append([f"{n:,}", f"{n * 223 / 1e9:.1f} GB", f"{rss} MiB", f"{s['rows_per_s']:,.0f}",
                     f"{s['elapsed_s']:.1f} s"])
    sb.stop()
    table("Memory: rows generated on the fly and piped to stdin (batch, default settings, sandbox without limit)",
          ["rows", "input", "peak RSS", "rows/s", "elapsed"], rows)


def anon_peak(import_args, gen_args, binary=BIN):
    """Runs `gen_customers GEN_ARGS | cio-import import IMPORT_ARGS` and samples the importer's
    RssAnon (anonymous memory: heap and stacks, not the ledger's memory-mapped file pages)
    every 50 ms. Returns (summary, peak RssAnon in MiB)."""
    import threading
    summary = os.path.join(OUT, "summary.json")
    if os.path.exists(summary):
        os.remove(summary)
    gen = subprocess.Popen([GEN, *gen_args], stdout=subprocess.PIPE)
    imp = subprocess.Popen([binary, "import", *import_args, "-q", "--summary", summary,
                            "--rejects", f"{OUT}/rejects.csv", "--errors", f"{OUT}/errors.csv"],
                           stdin=gen.stdout, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=ENV, cwd=OUT)
    gen.stdout.close()
    peak = [0]

    def sample():
        while imp.poll() is None:
            try:
                with open(f"/proc/{imp.pid}/status") as fh:
                    for line in fh:
                        if line.startswith("RssAnon:"):
                            peak[0] = max(peak[0], int(line.split()[1]))
            except OSError:
                return
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    imp.wait()
    gen.wait()
    t.join()
    with open(summary) as fh:
        s = json.load(fh)
    return s, round(peak[0] / 1024, 1)


def anon():
    """Issue 10 item 14: peak RssAnon with --state at 10M distinct people, and while requests
    stall for 2 minutes (back-pressure, not growth)."""
    builds = [("this build", BIN)]
    if os.environ.get("CIO_BENCH_OLD"):
        builds.append(("CIO_BENCH_OLD", os.environ["CIO_BENCH_OLD"]))
    rows = []
    for name, binary in builds:
        sb = Sandbox("--limit", "0", "--discard")
        state = os.path.join(OUT, "anon-state.db")
        for f in [state, state + "-wal", state + "-shm"]:
            if os.path.exists(f):
                os.remove(f)
        n = 10_000_000
        s, peak = anon_peak(["-", "--format", "csv", "--endpoint", sb.url, "--state", state],
                            [str(n), "csv"], binary)
        sb.stop()
        assert s["sent"] == n, s
        results[f"anon_state_10m_{name}"] = {"peak_rss_anon_mib": peak, "elapsed_s": s["elapsed_s"]}
        rows.append([name, f"{n:,} distinct people, --state, fresh ledger", f"{peak} MiB",
                     f"{s['elapsed_s']:.0f} s"])
        # About 1% of requests answer only after 2 minutes (then 504, and are retried).
        sb = Sandbox("--limit", "0", "--discard", "--slow-rate", "0.01", "--slow-ms", "120000",
                     "--seed", "7")
        n = 2_000_000
        s, peak = anon_peak(["-", "--format", "csv", "--endpoint", sb.url, "--timeout", "180"],
                            [str(n), "csv"], binary)
        stats = sb.stats()
        sb.stop()
        assert s["sent"] == n, s
        results[f"anon_stalled_{name}"] = {"peak_rss_anon_mib": peak, "elapsed_s": s["elapsed_s"],
                                            "requests": s["requests"], "retries": s["retries"]}
        rows.append([name, f"{n:,} rows, 1% of requests stalled 2 min ({s['retries']} retried)",
                     f"{peak} MiB", f"{s['elapsed_s']:.0f} s"])
    table("Peak anonymous memory (RssAnon, sampled every 50 ms; stdin, batch, default settings "
          "(100 req/s), sandbox without limit)",
          ["build", "run", "peak RssAnon", "elapsed"], rows)


def resync():
    path = os.path.join(OUT, "1m.csv")
    if not os.path.exists(path):
        sh(f"{GEN} 1000000 csv > {path}")
    state = os.path.join(OUT, "resync.db")
    for f in [state, state + "-wal", state + "-shm"]:
        if os.path.exists(f):
            os.remove(f)
    sb = Sandbox("--limit", "0", "--discard")
    first, rss1 = cio_import(f"{path} --endpoint {sb.url} --rate 0 --state {state}")
    again, rss2 = cio_import(f"{path} --endpoint {sb.url} --rate 0 --state {state}")
    sb.stop()
    assert first["sent"] == 1_000_000 and again["skipped"] == 1_000_000 and again["requests"] == 0
    results["resync"] = {"first_elapsed_s": first["elapsed_s"], "first_rows_per_s": first["rows_per_s"],
                         "resync_elapsed_s": again["elapsed_s"], "resync_requests": again["requests"],
                         "resync_peak_rss_mib": rss2}
    table("Re-sync: 1,000,000 rows with --state, first run then the same file again",
          ["run", "sent", "skipped", "requests", "elapsed", "rows/s", "peak RSS"],
          [["first", f"{first['sent']:,}", first["skipped"], first["requests"], f"{first['elapsed_s']:.1f} s",
            f"{first['rows_per_s']:,.0f}", f"{rss1} MiB"],
           ["unchanged re-run", again["sent"], f"{again['skipped']:,}", again["requests"],
            f"{again['elapsed_s']:.1f} s", f"{again['rows_per_s']:,.0f}", f"{rss2} MiB"]])


def inspect():
    path = os.path.join(OUT, "4m.csv")
    if not os.path.exists(path):
        sh(f"{GEN} 4500000 csv > {path}")
    size = os.path.getsize(path)
    runs = []
    for _ in range(3):
        t = time.time()
        subprocess.run([BIN, "inspect", path, "--json"], check=True, stdout=subprocess.DEVNULL, env=ENV)
        runs.append(time.time() - t)
    best = sorted(runs)[1]
    gb_min = size / 1e9 / (best / 60)
    results["inspect"] = {"bytes": size, "median_s": round(best, 2), "gb_per_min": round(gb_min, 2)}
    table("inspect: one streaming pass over a generated CSV",
          ["input", "rows", "time (median of 3)", "MB/s", "GB/min"],
          [[f"{size / 1e9:.2f} GB", "4,500,000", f"{best:.1f} s", f"{size / 1e6 / best:.0f}", f"{gb_min:.2f}"]])


def side_by_side():
    n = 1000
    path = os.path.join(OUT, "1k.csv")
    sh(f"{GEN} {n} csv > {path}")
    sb = Sandbox("--latency-ms", "50", "--discard", tls=True)
    env = dict(ENV, REQUESTS_CA_BUNDLE=sb.cert)
    out = {}
    for name, script in [("hand-written requests.put loop", "naive_put.py"),
                         ("official Python client, identify per row", "official_client.py")]:
        r = subprocess.run([PY, os.path.join(ROOT, "benches", script), path, sb.url], env=env,
                           capture_output=True, text=True, check=True)
        fig = json.loads(r.stdout)
        assert fig["sent"] == n, fig
        out[name] = n / fig["elapsed_s"]
    for name, api in [("cio-import --api v1", "v1"), ("cio-import (batch)", "batch")]:
        s, _ = cio_import(f"{path} --endpoint {sb.url} --ca-cert {sb.cert} --api {api}")
        assert s["sent"] == n, s
        out[name] = n / s["elapsed_s"]
    st = sb.stats()
    sb.stop()
    base = out["hand-written requests.put loop"]
    results["side_by_side"] = {"rows": n, "rows_per_s": {k: round(v, 1) for k, v in out.items()},
                               "sandbox_429s": st["by_status"].get("429", 0)}
    table(f"Side by side: {n:,} rows, same sandbox (TLS, 50 ms latency, 100 req/s limit)",
          ["importer", "rows/s", "time for 1,000 rows", "vs hand-written"],
          [[k, f"{v:,.1f}", f"{n / v:.2f} s", f"{v / base:,.1f}x"] for k, v in out.items()])


def timed_import(args, seconds):
    """Runs an import for at most `seconds`, then SIGINT (the summary is still written).
    Returns the summary."""
    summary = os.path.join(OUT, "summary.json")
    if os.path.exists(summary):
        os.remove(summary)
    p = subprocess.Popen([BIN, "import", *args, "-q", "--summary", summary, "--rejects",
                          f"{OUT}/rejects.csv", "--errors", f"{OUT}/errors.csv"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=OUT)
    try:
        p.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
    with open(summary) as fh:
        return json.load(fh)


def arrivals(sb):
    with urllib.request.urlopen(sb.url + "/__sandbox/arrivals") as r:
        return json.load(r)


def per_second(arr, t0_ms=0.0):
    """[(requests, 2xx, 429)] per whole second since t0."""
    bins = {}
    for a in arr:
        b = int((a["at_ms"] - t0_ms) // 1000)
        r = bins.setdefault(b, [0, 0, 0])
        r[0] += 1
        r[1] += 200 <= a["status"] < 300
        r[2] += a["status"] == 429
    n = max(bins) + 1 if bins else 0
    return [tuple(bins.get(i, [0, 0, 0])) for i in range(n)]


MODES = [("closed loop (default)", []), ("--fixed-rate (open loop, as before)", ["--fixed-rate"])]


def pacing():
    """Issue 11's goals, each case with the closed loop and with --fixed-rate."""
    os.makedirs(OUT, exist_ok=True)
    big = os.path.join(OUT, "pacing-2m.csv")
    if not os.path.exists(big):
        sh(f"{GEN} 2000000 csv > {big}")
    out = {}
    # 1. The server allows 50 req/s; default settings (--rate 100).
    rows = []
    for api in ["v1", "batch"]:
        for ra in [["--retry-after", "1"], []]:
            for mode, flags in MODES:
                sb = Sandbox("--limit", "50", "--burst", "10", "--latency-ms", "50", "--discard", *ra)
                s = timed_import([big, "--endpoint", sb.url, "--api", api, *flags], 30)
                st = sb.stats()
                sb.stop()
                ok = st["by_status"].get("200", 0)
                share429 = st["by_status"].get("429", 0) / max(1, st["requests"])
                key = f"limit50_{api}_{'ra' if ra else 'nora'}_{'fixed' if flags else 'closed'}"
                out[key] = {"acked_req_per_s": round(ok / s["elapsed_s"], 1),
                            "share_429": round(share429, 4), "rate_final": s["rate_final"],
                            "rate_min": s["rate_min"], "throttled_s": s["throttled_s"],
                            "exhausted": s["exhausted"]}
                rows.append([api, "1" if ra else "none", mode, f"{ok / s['elapsed_s']:.1f}",
                             f"{ok / s['elapsed_s'] / 50:.0%}", f"{share429:.1%}",
                             s["rate_final"], s["rate_min"], s["throttled_s"]])
    table("Pacing 1: the server allows 50 req/s (burst 10, 50 ms latency), default --rate 100, 30 s each "
          "(goal: at least 90% of 50 acknowledged, at most 5% of requests answered 429)",
          ["api", "Retry-After", "pacing", "acked req/s", "of 50", "429 share", "rate_final",
           "rate_min", "throttled_s"], rows)
    # 2. A 100 req/s quota shared with 40 req/s of live traffic.
    rows = []
    for ra in [[], ["--retry-after", "1"]]:
        for mode, flags in MODES:
            sb = Sandbox("--limit", "100", "--burst", "10", "--latency-ms", "50", "--discard",
                         "--background-rate", "40", "--seed", "11", *ra)
            s = timed_import([big, "--endpoint", sb.url, "--api", "v1", *flags], 30)
            st = sb.stats()
            sb.stop()
            ok = st["by_status"].get("200", 0)
            bg = st["background_429s"] / max(1, st["background_requests"])
            key = f"shared_{'ra' if ra else 'nora'}_{'fixed' if flags else 'closed'}"
            out[key] = {"importer_acked_req_per_s": round(ok / s["elapsed_s"], 1),
                        "importer_share_of_60": round(ok / s["elapsed_s"] / 60, 3),
                        "live_429_share": round(bg, 4), "live_requests": st["background_requests"]}
            rows.append(["1" if ra else "none", mode, f"{ok / s['elapsed_s']:.1f}",
                         f"{ok / s['elapsed_s'] / 60:.0%}", f"{bg:.2%}", st["background_requests"]])
    table("Pacing 2: 100 req/s quota, 40 req/s of live traffic (Poisson), v1, 30 s each "
          "(goal: importer at least 80% of the 60 left, live traffic 429 on at most 2%)",
          ["Retry-After", "pacing", "importer acked req/s", "of 60", "live 429 share", "live requests"], rows)
    # 3. The limit drops from 100 to 40 at 20 s and comes back at 40 s.
    rows = []
    for ra in [[]]:
        for mode, flags in MODES:
            sb = Sandbox("--limit-schedule", "0:100,20:40,40:100", "--burst", "10", "--latency-ms",
                         "50", "--discard", *ra)
            s = timed_import([big, "--endpoint", sb.url, "--api", "v1", *flags], 60)
            sec = per_second(arrivals(sb))
            sb.stop()
            # Down: from 20 s until two seconds in a row carry at most 110% of 40 requests.
            down = next((i - 20 for i in range(20, 39) if sec[i][0] <= 44 and sec[i + 1][0] <= 44), None)
            # Up: from 40 s until the end of the first second with at least 90 acknowledged.
            up = next((i + 1 - 40 for i in range(40, min(len(sec), 60)) if sec[i][1] >= 90), None)
            r429 = sum(x[2] for x in sec) / max(1, sum(x[0] for x in sec))
            key = f"schedule_{'ra' if ra else 'nora'}_{'fixed' if flags else 'closed'}"
            out[key] = {"follow_down_s": down, "follow_up_s": up, "share_429": round(r429, 4),
                        "acked_per_second": [x[1] for x in sec]}
            rows.append(["1" if ra else "none", mode, "never" if down is None else f"{down} s",
                         "never" if up is None else f"{up} s", f"{r429:.1%}",
                         f"{sum(x[1] for x in sec[20:40]) / 20:.1f}", s["rate_min"]])
    table("Pacing 3: limit 100, 40 from 20 s, 100 from 40 s (v1, 60 s each; goal: follows within 5 s each way). "
          "Down = seconds until two seconds in a row carry at most 44 requests; up = seconds until a second "
          "with at least 90 acknowledged",
          ["Retry-After", "pacing", "down", "up", "429 share", "acked req/s at 40", "rate_min"], rows)
    # 4. A fault storm with --rate twice the server's limit.
    rows = []
    n = 3000
    path = os.path.join(OUT, "pacing-3k.csv")
    sh(f"{GEN} {n} csv > {path}")
    for mode, flags in MODES:
        sb = Sandbox("--limit", "150", "--burst", "15", "--latency-ms", "50", "--retry-after", "1",
                     "--fail-rate", "0.15", "--reset-rate", "0.05", "--slow-rate", "0.01",
                     "--slow-ms", "5000", "--seed", "7", "--discard")
        t = time.time()
        s = timed_import([path, "--endpoint", sb.url, "--api", "v1", "--rate", "300", "--timeout", "2",
                          *flags], 90)
        st = sb.stats()
        sb.stop()
        ack = s["sent"] / s["elapsed_s"]
        key = f"storm_{'fixed' if flags else 'closed'}"
        out[key] = {"sent": s["sent"], "exhausted": s["exhausted"], "not_attempted": s["not_attempted"],
                    "elapsed_s": s["elapsed_s"], "rows_per_s": round(ack, 1),
                    "of_limit": round(ack / 150, 3), "retries": s["retries"], "429s": s["429s"]}
        rows.append([mode, f"{s['sent']:,} of {n:,}", s["exhausted"], f"{s['elapsed_s']:.1f} s",
                     f"{ack:.1f}", f"{ack / 150:.0%}", s["429s"], s["retries"]])
    table("Pacing 4: fault storm: limit 150 with Retry-After: 1, --rate 300, 15% 5xx, 5% resets, 1% slower "
          "than --timeout 2, v1, 3,000 rows (stopped at 90 s if not done; goal: all delivered, none "
          "exhausted, at least 60% of 150 rows/s)",
          ["pacing", "delivered", "exhausted", "elapsed", "rows/s", "of 150", "429s", "retries"], rows)
    # 5. --rate right: 100 against 100.
    rows = []
    for mode, flags in MODES:
        sb = Sandbox("--limit", "100", "--burst", "10", "--latency-ms", "50", "--discard")
        s = timed_import([big, "--endpoint", sb.url, "--api", "v1", "--rate", "100", *flags], 20)
        st = sb.stats()
        sb.stop()
        req_s = st["requests"] / s["elapsed_s"]
        key = f"right_{'fixed' if flags else 'closed'}"
        out[key] = {"req_per_s": round(req_s, 1), "max_in_1s": st["max_requests_per_second"],
                    "answers_429": st["by_status"].get("429", 0)}
        rows.append([mode, f"{req_s:.1f}", st["max_requests_per_second"], st["by_status"].get("429", 0)])
    table("Pacing 5: --rate right, 100 against a 100 req/s limit (v1, 20 s each; goal: at least 97 req/s, "
          "no second above 110, zero 429s)", ["pacing", "req/s", "most in any 1 s", "429s"], rows)
    results["pacing"] = out


def main():
    os.makedirs(OUT, exist_ok=True)
    sh(f"cd {ROOT} && cargo build --release --quiet --bin cio-import --example gen_customers")
    wanted = sys.argv[1:] or ["ceiling", "limit", "memory", "resync", "inspect", "side"]
    results["machine"] = machine()
    print(f"machine: {results['machine']}")
    steps = {"ceiling": ceiling, "limit": at_limit, "memory": memory, "anon": anon, "resync": resync,
             "inspect": inspect, "side": side_by_side, "pacing": pacing}
    for w in wanted:
        steps[w]()
    path = os.path.join(OUT, "results.json")
    old = json.load(open(path)) if os.path.exists(path) else {}
    old.update(results)
    with open(path, "w") as fh:
        json.dump(old, fh, indent=2)
    print(f"\nfigures written to {path}")


if __name__ == "__main__":
    main()
