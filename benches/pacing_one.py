"""One case of `e2e.py pacing`, for tuning and for repeating the noisy ones. Build first:
`cargo build --release --bin cio-import --example gen_customers`.

    python3 benches/pacing_one.py CASE [extra import flags...]

CASE: l50ra l50 l50ra_b l50_b (50 req/s with or without Retry-After, v1 or batch), sh sh_ra
(100 req/s shared with 40 req/s of live traffic), sched (limit 100, 40, 100), storm, right.
SECS sets the run time of the 30-second cases."""
import sys, os, json, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e
from e2e import Sandbox, timed_import, per_second, arrivals, OUT, GEN, sh
os.makedirs(OUT, exist_ok=True)
big = os.path.join(OUT, "pacing-2m.csv")
if not os.path.exists(big):
    sh(f"{GEN} 2000000 csv > {big}")
case = sys.argv[1]; extra = sys.argv[2:]
secs = float(os.environ.get("SECS", "30"))
def show(s, st, ok, extra_info=""):
    print(json.dumps({k: s.get(k) for k in ["elapsed_s","sent","exhausted","rate_final","rate_min","throttled_s","429s","retries"]}), extra_info)
if case.startswith("l50"):
    ra = ["--retry-after", "1"] if "ra" in case else []
    api = "batch" if case.endswith("_b") else "v1"
    sb = Sandbox("--limit", "50", "--burst", "10", "--latency-ms", "50", "--discard", *ra)
    s = timed_import([big, "--endpoint", sb.url, "--api", api, *extra], secs)
    st = sb.stats(); sec = per_second(arrivals(sb)); sb.stop()
    ok = st["by_status"].get("200", 0)
    show(s, st, ok, f"acked/s={ok/s['elapsed_s']:.1f} of50={ok/s['elapsed_s']/50:.1%} 429share={st['by_status'].get('429',0)/max(1,st['requests']):.2%}")
    print("per-second acked:", [x[1] for x in sec]); print("per-second 429:", [x[2] for x in sec])
elif case.startswith("sh"):
    ra = ["--retry-after", "1"] if "ra" in case else []
    sb = Sandbox("--limit", "100", "--burst", "10", "--latency-ms", "50", "--discard", "--background-rate", "40", "--seed", "11", *ra)
    s = timed_import([big, "--endpoint", sb.url, "--api", "v1", *extra], secs)
    st = sb.stats(); sb.stop()
    ok = st["by_status"].get("200", 0)
    bg = st["background_429s"] / max(1, st["background_requests"])
    show(s, st, ok, f"importer acked/s={ok/s['elapsed_s']:.1f} of60={ok/s['elapsed_s']/60:.1%} live429={bg:.2%} ({st['background_429s']}/{st['background_requests']})")
elif case == "storm":
    path = os.path.join(OUT, "pacing-3k.csv")
    if not os.path.exists(path): sh(f"{GEN} 3000 csv > {path}")
    sb = Sandbox("--limit", "150", "--burst", "15", "--latency-ms", "50", "--retry-after", "1", "--fail-rate", "0.15", "--reset-rate", "0.05", "--slow-rate", "0.01", "--slow-ms", "5000", "--seed", "7", "--discard")
    s = timed_import([path, "--endpoint", sb.url, "--api", "v1", "--rate", "300", "--timeout", "2", *extra], 90)
    st = sb.stats(); sec = per_second(arrivals(sb)); sb.stop()
    show(s, st, 0, f"rows/s={s['sent']/s['elapsed_s']:.1f} of150={s['sent']/s['elapsed_s']/150:.1%}")
    print("per-second req:", [x[0] for x in sec]); print("per-second 429:", [x[2] for x in sec])
elif case == "sched":
    sb = Sandbox("--limit-schedule", "0:100,20:40,40:100", "--burst", "10", "--latency-ms", "50", "--discard")
    s = timed_import([big, "--endpoint", sb.url, "--api", "v1", *extra], 60)
    sec = per_second(arrivals(sb)); sb.stop()
    down = next((i - 20 for i in range(20, 39) if sec[i][0] <= 44 and sec[i + 1][0] <= 44), None)
    up = next((i + 1 - 40 for i in range(40, min(len(sec), 60)) if sec[i][1] >= 90), None)
    show(s, None, 0, f"down={down} up={up} 429share={sum(x[2] for x in sec)/max(1,sum(x[0] for x in sec)):.2%}")
elif case == "right":
    sb = Sandbox("--limit", "100", "--burst", "10", "--latency-ms", "50", "--discard")
    s = timed_import([big, "--endpoint", sb.url, "--api", "v1", "--rate", "100", *extra], 20)
    st = sb.stats(); sb.stop()
    show(s, st, 0, f"req/s={st['requests']/s['elapsed_s']:.1f} max1s={st['max_requests_per_second']} 429={st['by_status'].get('429',0)}")
