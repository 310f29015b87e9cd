#!/usr/bin/env python3
"""Issue 14: an unchanged night with duplicate identifiers, before and after.

1,000,000 rows: 900,000 people, 100,000 of whom (every ninth) have a second, earlier row with
other values. For each binary (BIN, and BIN_BEFORE when given): a first night into a fresh
ledger, then the same file again; peak RSS from /usr/bin/time, figures from the summaries.
Then the pre-pass alone: the same night on a file without duplicates (one pass of identifiers).

    python3 benches/ledger_duplicates.py [BIN] [BIN_BEFORE]
"""
import json
import os
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench", "dups")
os.makedirs(OUT, exist_ok=True)
ENV = dict(os.environ, CUSTOMERIO_SITE_ID="bench-site", CUSTOMERIO_TRACK_API_KEY="bench-key")
ENV.pop("RUST_LOG", None)


def generate(path, duplicates):
    if os.path.exists(path):
        return
    with open(path, "w") as f:
        f.write("id,name,plan,city,score\n")
        for i in range(900_000 if duplicates else 1_000_000):
            if duplicates and i % 9 == 0:
                f.write(f"c{i},Early {i},trial,Oslo,{i % 7}\n")
            f.write(f"c{i},Customer {i},plan{i % 5},City {i % 300},{i % 1000}\n")


def run(binary, path, state, port):
    summary = os.path.join(OUT, "summary.json")
    if os.path.exists(summary):
        os.remove(summary)
    rss = os.path.join(OUT, "rss.txt")
    cmd = [
        "/usr/bin/time", "-f", "%M %e", "-o", rss, binary, "import", path, "--endpoint",
        f"http://127.0.0.1:{port}", "--rate", "0", "--state", state, "--summary", summary,
        "--rejects", os.path.join(OUT, "rejects.csv"), "--errors", os.path.join(OUT, "errors.csv"),
    ]
    r = subprocess.run(cmd, env=ENV, cwd=OUT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if not os.path.exists(summary):
        sys.exit(f"{binary} {path}: {r.stderr}")
    with open(summary) as fh:
        s = json.load(fh)
    with open(rss) as fh:
        kib, wall = fh.read().split()[-2:]
    found = re.search(r"pre-pass ([0-9.]+) s", r.stderr)
    s["prepass_s"] = float(found.group(1)) if found else None
    return s, int(kib) / 1024, float(wall)


def nights(binary, path, label, port):
    state = os.path.join(OUT, f"{label}.db")
    for f in [state, state + "-wal", state + "-shm", state + ".lock"]:
        if os.path.exists(f):
            os.remove(f)
    rows = []
    s, rss, wall = run(binary, path, state, port)
    rows.append((label, "first", s["sent"], s["skipped"], s["requests"], wall, rss, s["prepass_s"]))
    # The same file again, three times: the median wall time (and its run's figures).
    again = sorted((run(binary, path, state, port) for _ in range(3)), key=lambda x: x[2])
    s, rss, wall = again[1]
    peak = max(x[1] for x in again)
    rows.append((label, "the same file again (median of 3; highest RSS)", s["sent"], s["skipped"],
                 s["requests"], wall, peak, s["prepass_s"]))
    return rows


def main():
    binary = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "cio-import")
    before = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
    dups = os.path.join(OUT, "1m-dups.csv")
    plain = os.path.join(OUT, "1m-plain.csv")
    generate(dups, True)
    generate(plain, False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sb = subprocess.Popen([binary, "sandbox", "--port", str(port), "--limit", "0", "--discard"],
                          env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    assert sb.poll() is None, "the sandbox did not start"
    try:
        rows = []
        if before:
            rows += nights(before, dups, "before", port)
        rows += nights(binary, dups, "after", port)
        if before:
            rows += nights(before, plain, "before, no duplicates", port)
        rows += nights(binary, plain, "after, no duplicates", port)
    finally:
        sb.terminate()
        sb.wait()
    print("| binary | night | sent | skipped | requests | wall | of which pre-pass | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for label, night, sent, skipped, req, wall, rss, pre in rows:
        pre = "-" if pre is None else f"{pre:.2f} s"
        print(f"| {label} | {night} | {sent:,} | {skipped:,} | {req:,} | {wall:.2f} s | {pre} | {rss:.0f} MiB |")


if __name__ == "__main__":
    main()
