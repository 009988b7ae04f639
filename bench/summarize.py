#!/usr/bin/env python3
"""Turns oha JSON reports into benchmark records and the results table.

  summarize.py --record NAME closed|fixed OHA.json [--cpu-ticks N --clk-tck N --rss-kib N]
               [--steal-pct P]
      prints one JSON record line
      (fixed-rate runs repeated in rounds are combined: median p50 and p99,
      the p99 range, the median share of CPU time stolen by the hypervisor)
  summarize.py --common-rate RESULTS.jsonl
      prints the fixed request rate every target is measured at: 60% of the
      lowest closed-loop throughput among the proxies
  summarize.py RESULTS.jsonl
      prints the results as a Markdown table, with wasp/peer ratios
"""
import argparse
import json
import statistics
import sys

PROXIES = ["wasp", "wasp-resilience", "envoy", "nginx", "haproxy", "pingora", "wasp-2w", "nginx-2w"]


def record(args):
    with open(args.report) as f:
        report = json.load(f)
    summary = report["summary"]
    statuses = report.get("statusCodeDistribution", {})
    ok = sum(n for code, n in statuses.items() if str(code).startswith("2"))
    total = sum(statuses.values())
    # oha cuts the requests still in flight when the duration ends; those are
    # not failures of the target.
    errors = sum(
        n
        for what, n in report.get("errorDistribution", {}).items()
        if "aborted due to deadline" not in what
    ) + (total - ok)
    pct = report.get("latencyPercentiles", {})
    out = {
        "name": args.name,
        "kind": args.kind,
        "rps": summary.get("requestsPerSec") or 0.0,
        "requests": total,
        "errors": errors,
        "p50_ms": (pct.get("p50") or 0.0) * 1000,
        "p99_ms": (pct.get("p99") or 0.0) * 1000,
    }
    if args.cpu_ticks is not None and total:
        out["cpu_s_per_1k"] = args.cpu_ticks / args.clk_tck / (total / 1000)
    if args.rss_kib is not None:
        out["rss_mib"] = args.rss_kib / 1024
    if args.steal_pct is not None:
        out["steal_pct"] = args.steal_pct
    print(json.dumps(out))


def combine(runs):
    """One record for the fixed-rate runs of a target (one per round)."""
    if len(runs) == 1:
        return runs[0]
    out = dict(runs[-1])
    out["p50_ms"] = statistics.median(r["p50_ms"] for r in runs)
    out["p99_ms"] = statistics.median(r["p99_ms"] for r in runs)
    out["p99_range"] = [min(r["p99_ms"] for r in runs), max(r["p99_ms"] for r in runs)]
    out["errors"] = sum(r["errors"] for r in runs)
    out["rounds"] = len(runs)
    steals = [r["steal_pct"] for r in runs if "steal_pct" in r]
    if steals:
        out["steal_pct"] = statistics.median(steals)
    return out


def load(path):
    rows, fixed = {}, {}
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                if r["kind"] == "fixed":
                    fixed.setdefault(r["name"], []).append(r)
                rows.setdefault(r["name"], {})[r["kind"]] = r
    for name, runs in fixed.items():
        rows[name]["fixed"] = combine(runs)
    return rows


def common_rate(path):
    rows = load(path)
    caps = [r["closed"]["rps"] for n, r in rows.items() if n != "direct" and "closed" in r]
    if not caps:
        caps = [r["closed"]["rps"] for r in rows.values() if "closed" in r]
    print(max(100, int(min(caps) * 0.6 / 100) * 100))


def table(path):
    rows = load(path)
    names = [n for n in ["direct"] + PROXIES if n in rows]
    rate = next((r["fixed"]["rps"] for r in rows.values() if "fixed" in r), None)
    lines = [
        "| target | max req/s (closed loop) | p50 ms | p99 ms | p99 range | steal % | CPU s / 1k req | RSS MiB | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        c, fx = rows[n].get("closed", {}), rows[n].get("fixed", {})
        low, high = fx.get("p99_range", [None, None])
        lines.append(
            "| {} | {:.0f} | {:.3f} | {:.3f} | {} | {} | {} | {} | {} |".format(
                n if n != "direct" else "direct (no proxy)",
                c.get("rps", 0),
                fx.get("p50_ms", 0),
                fx.get("p99_ms", 0),
                "-" if low is None else f"{low:.2f}–{high:.2f}",
                "{:.1f}".format(fx["steal_pct"]) if "steal_pct" in fx else "-",
                "{:.3f}".format(c["cpu_s_per_1k"]) if "cpu_s_per_1k" in c and n != "direct" else "-",
                "{:.1f}".format(c["rss_mib"]) if "rss_mib" in c and n != "direct" else "-",
                c.get("errors", 0) + fx.get("errors", 0),
            )
        )
    if rate:
        lines.append("")
        rounds = max((r.get("fixed", {}).get("rounds", 1) for r in rows.values()), default=1)
        lines.append(
            f"p50/p99: fixed rate of about {rate:.0f} req/s with latency correction"
            + (f", median of {rounds} rounds (targets taking turns)." if rounds > 1 else ".")
            + " Steal %: CPU time the hypervisor took from the machine during the fixed-rate runs."
        )

    def ratio(a, b, kind, key):
        try:
            return rows[a][kind][key] / rows[b][kind][key]
        except (KeyError, ZeroDivisionError):
            return None

    lines.append("")
    lines.append("| ratio | req/s | p99 | CPU / req | RSS |")
    lines.append("|---|---:|---:|---:|---:|")
    pairs = [("wasp", p) for p in ["envoy", "nginx", "haproxy", "pingora"]] + [
        ("wasp-resilience", "wasp"),
        ("wasp-2w", "nginx-2w"),
        ("wasp-2w", "wasp"),
        ("nginx-2w", "nginx"),
    ]
    for a, b in pairs:
        if a in rows and b in rows:
            vals = [
                ratio(a, b, "closed", "rps"),
                ratio(a, b, "fixed", "p99_ms"),
                ratio(a, b, "closed", "cpu_s_per_1k"),
                ratio(a, b, "closed", "rss_mib"),
            ]
            lines.append(
                f"| {a} / {b} | "
                + " | ".join("-" if v is None else f"{v:.2f}" for v in vals)
                + " |"
            )
    print("\n".join(lines))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--record":
        p = argparse.ArgumentParser()
        p.add_argument("--record", dest="name")
        p.add_argument("kind", choices=["closed", "fixed"])
        p.add_argument("report")
        p.add_argument("--cpu-ticks", type=int)
        p.add_argument("--clk-tck", type=int, default=100)
        p.add_argument("--rss-kib", type=int)
        p.add_argument("--steal-pct", type=float)
        record(p.parse_args())
    elif len(sys.argv) == 3 and sys.argv[1] == "--common-rate":
        common_rate(sys.argv[2])
    elif len(sys.argv) == 2:
        table(sys.argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
