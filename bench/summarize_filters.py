#!/usr/bin/env python3
"""Turns bench/filters.sh records into the filter-chain results tables.

  summarize_filters.py --common-rate RESULTS.jsonl
      prints the fixed request rate: 60% of the lowest (best-of-rounds)
      closed-loop throughput
  summarize_filters.py RESULTS.jsonl
      prints Markdown: one row per proxy and chain; per-filter overhead of the
      no-op chains; start-up time and memory per Wasm VM; wasp/Envoy ratios;
      and the issue's targets, met or not

Records are summarize.py's (closed / fixed runs, named PROXY/CHAIN, e.g.
wasp/noop-5, one per round) plus "start" (startup_ms, rss_idle_mib, vms,
vm_linear_memory_bytes) and "failed" (reason) records. Of several rounds, a
target keeps its closed-loop run with the most requests/s and its fixed-rate
run with the lowest p50.
"""
import json
import sys

PROXIES = ["wasp", "envoy-v8", "envoy-wasmtime"]


def better(kind, new, old):
    if kind == "closed":
        return new.get("rps", 0) > old.get("rps", 0)
    if kind == "fixed":
        return new.get("p50_ms", float("inf")) < old.get("p50_ms", float("inf"))
    return True


def load(path):
    """Records by name and kind, the best run of each kind."""
    rows = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            kinds = rows.setdefault(r["name"], {})
            if r["kind"] not in kinds or better(r["kind"], r, kinds[r["kind"]]):
                kinds[r["kind"]] = r
    return rows


def common_rate(path):
    caps = [r["closed"]["rps"] for r in load(path).values() if "closed" in r]
    print(max(100, int(min(caps) * 0.6 / 100) * 100) if caps else 1000)


def split(name):
    proxy, chain = name.split("/", 1)
    kind, count = chain.rsplit("-", 1)
    return proxy, kind, int(count)


def chain_order(name):
    proxy, kind, count = split(name)
    return (PROXIES.index(proxy) if proxy in PROXIES else 99, kind != "noop", count)


def get(rows, name, kind, key):
    return rows.get(name, {}).get(kind, {}).get(key)


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def main_table(rows, names):
    lines = [
        "| proxy | chain | max req/s | p50 ms | p99 ms | CPU µs / req | RSS MiB | VMs | start-up ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        proxy, kind, count = split(n)
        r = rows[n]
        if "failed" in r:
            lines.append(f"| {proxy} | {kind} × {count} | did not start: {r['failed']['reason']} |||||||| ")
            continue
        c, fx, st = r.get("closed", {}), r.get("fixed", {}), r.get("start", {})
        cpu = c.get("cpu_s_per_1k")
        lines.append(
            "| {} | {} × {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                proxy,
                kind,
                count,
                fmt(c.get("rps"), ".0f"),
                fmt(fx.get("p50_ms"), ".3f"),
                fmt(fx.get("p99_ms"), ".3f"),
                fmt(None if cpu is None else cpu * 1000, ".1f"),
                fmt(c.get("rss_mib"), ".1f"),
                st.get("vms", "-"),
                st.get("startup_ms", "-"),
                c.get("errors", 0) + fx.get("errors", 0),
            )
        )
    return lines


def delta_per(rows, name, base, kind, key, scale):
    """(value(name) - value(base)) * scale / added filters, or None."""
    a, b = get(rows, name, kind, key), get(rows, base, kind, key)
    added = split(name)[2] - split(base)[2]
    if a is None or b is None or added <= 0:
        return None
    return (a - b) * scale / added


def overhead_table(rows, proxies):
    """Per-filter cost of N no-op filters against the empty chain, and the
    marginal cost of each filter after the first (against one filter), which
    leaves out what a chain costs once per request."""
    lines = [
        "| proxy | no-op filters | Δ p50 µs / filter | Δ CPU µs / req / filter "
        "| Δ CPU µs / req / filter after the first | req/s vs no filters |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for proxy in proxies:
        base, one = f"{proxy}/noop-0", f"{proxy}/noop-1"
        for name in sorted((n for n in rows if n.startswith(proxy + "/noop-")), key=chain_order):
            count = split(name)[2]
            if count == 0 or "failed" in rows[name]:
                continue
            rps, rps_0 = get(rows, name, "closed", "rps"), get(rows, base, "closed", "rps")
            lines.append(
                "| {} | {} | {} | {} | {} | {} |".format(
                    proxy,
                    count,
                    fmt(delta_per(rows, name, base, "fixed", "p50_ms", 1000), ".1f"),
                    fmt(delta_per(rows, name, base, "closed", "cpu_s_per_1k", 1000), ".2f"),
                    fmt(delta_per(rows, name, one, "closed", "cpu_s_per_1k", 1000), ".2f"),
                    fmt(None if not (rps and rps_0) else rps / rps_0, ".0%"),
                )
            )
    return lines


def vm_table(rows, proxies):
    """Start-up time and idle RSS per plugin from the largest no-op chain:
    against the empty chain (includes loading the engine and compiling the
    module once) and against one plugin (each further VM: instantiation,
    proxy_on_vm_start, proxy_on_configure)."""
    lines = [
        "| proxy | VMs (largest no-op chain) | start-up ms / plugin | start-up ms / plugin after the first "
        "| RSS KiB / VM | RSS KiB / VM after the first | linear memory KiB / VM |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for proxy in proxies:
        noops = [n for n in rows if n.startswith(proxy + "/noop-") and "start" in rows[n]]
        base, one = f"{proxy}/noop-0", f"{proxy}/noop-1"
        if base not in noops or len(noops) < 2:
            continue
        top = max(noops, key=lambda n: split(n)[2])
        s = rows[top]["start"]

        def per_vm(ref):
            if ref not in rows or "start" not in rows[ref]:
                return None
            vms = s.get("vms", 0) - rows[ref]["start"].get("vms", 0)
            rss = (s["rss_idle_mib"] - rows[ref]["start"]["rss_idle_mib"]) * 1024
            return rss / vms if vms > 0 else None

        linear = s.get("vm_linear_memory_bytes")
        lines.append(
            "| {} | {} | {} | {} | {} | {} | {} |".format(
                proxy,
                s.get("vms", "-"),
                fmt(delta_per(rows, top, base, "start", "startup_ms", 1), ".1f"),
                fmt(delta_per(rows, top, one, "start", "startup_ms", 1), ".1f"),
                fmt(per_vm(base), ".0f"),
                fmt(per_vm(one), ".0f"),
                fmt(linear / 1024 / s["vms"] if linear and s.get("vms") else None, ".0f"),
            )
        )
    return lines


def ratio_table(rows, peers):
    lines = ["| chain | " + " | ".join(f"wasp / {p}: req/s, CPU / req, p50, p99" for p in peers) + " |"]
    lines.append("|---|" + "---:|" * len(peers))
    chains = sorted({n.split("/", 1)[1] for n in rows if n.startswith("wasp/")}, key=lambda c: chain_order("wasp/" + c))
    for chain in chains:
        cells = []
        for peer in peers:
            vals = []
            for kind, key in [("closed", "rps"), ("closed", "cpu_s_per_1k"), ("fixed", "p50_ms"), ("fixed", "p99_ms")]:
                a, b = get(rows, f"wasp/{chain}", kind, key), get(rows, f"{peer}/{chain}", kind, key)
                vals.append(fmt(a / b if a and b else None, ".2f"))
            cells.append(", ".join(vals))
        lines.append(f"| {chain} | " + " | ".join(cells) + " |")
    return lines


def targets(rows, peers):
    """The issue's targets, checked on wasp's figures."""
    out = []
    per_filter = []
    for n in rows:
        proxy, kind, count = split(n)
        if proxy == "wasp" and kind == "noop" and count > 0:
            p50, p50_0 = get(rows, n, "fixed", "p50_ms"), get(rows, "wasp/noop-0", "fixed", "p50_ms")
            if p50 is not None and p50_0 is not None:
                per_filter.append((count, (p50 - p50_0) * 1000 / count))
    if per_filter:
        worst = max(v for _, v in per_filter)
        out.append(f"- each no-op filter adds ≤ 5 µs median: {'met' if worst <= 5 else 'not met'} (worst {worst:.1f} µs)")
    rps5, rps0 = get(rows, "wasp/noop-5", "closed", "rps"), get(rows, "wasp/noop-0", "closed", "rps")
    if rps5 and rps0:
        out.append(f"- 5 filters keep ≥ 80% of the no-filter req/s: {'met' if rps5 / rps0 >= 0.8 else 'not met'} ({rps5 / rps0:.0%})")
    cpu5, cpu0 = get(rows, "wasp/noop-5", "closed", "cpu_s_per_1k"), get(rows, "wasp/noop-0", "closed", "cpu_s_per_1k")
    if cpu5 and cpu0:
        out.append(
            f"- the same judged by CPU per request (capacity of one core): "
            f"{'met' if cpu0 / cpu5 >= 0.8 else 'not met'} ({cpu0 / cpu5:.0%})"
        )
    mesh, none = get(rows, "wasp/mesh-1", "closed", "rps"), get(rows, "wasp/noop-0", "closed", "rps")
    if mesh and none:
        out.append(
            f"- the full chain (mesh-1) keeps ≥ 60% of wasp's no-filter req/s: "
            f"{'met' if mesh / none >= 0.6 else 'not met'} ({mesh / none:.0%})"
        )
    envoy_mesh = get(rows, "envoy-v8/mesh-1", "closed", "rps")
    if mesh and envoy_mesh:
        out.append(
            f"- the full chain is ≥ 2× Envoy (V8)'s req/s with the same chain: "
            f"{'met' if mesh / envoy_mesh >= 2 else 'not met'} ({mesh / envoy_mesh:.2f}×)"
        )
    mesh_rss = get(rows, "wasp/mesh-1", "closed", "rss_mib")
    if mesh_rss is not None:
        out.append(
            f"- wasp's RSS with the full chain ≤ 20 MiB: {'met' if mesh_rss <= 20 else 'not met'} ({mesh_rss:.1f} MiB)"
        )
    for peer in peers:
        pairs = [
            (n.split("/", 1)[1], get(rows, n, "closed", "rps"), get(rows, peer + "/" + n.split("/", 1)[1], "closed", "rps"))
            for n in rows
            if n.startswith("wasp/")
        ]
        pairs = [(c, a, b) for c, a, b in pairs if a and b]
        if pairs:
            slower = [c for c, a, b in pairs if a <= b]
            out.append(
                f"- every chain faster in wasp than {peer} (req/s): "
                + ("met" if not slower else "not met for " + ", ".join(slower))
            )
            costlier = [
                c
                for c, _, _ in pairs
                if (get(rows, "wasp/" + c, "closed", "cpu_s_per_1k") or 0)
                >= (get(rows, peer + "/" + c, "closed", "cpu_s_per_1k") or 0)
            ]
            out.append(
                f"- every chain cheaper in wasp than {peer} (CPU per request): "
                + ("met" if not costlier else "not met for " + ", ".join(costlier))
            )
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--common-rate":
        common_rate(sys.argv[2])
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rows = load(sys.argv[1])
    names = sorted(rows, key=chain_order)
    proxies = [p for p in PROXIES if any(n.startswith(p + "/") for n in names)]
    lines = main_table(rows, names)
    rate = next((r["fixed"]["rps"] for r in rows.values() if "fixed" in r), None)
    if rate:
        lines += ["", f"p50/p99: fixed rate of about {rate:.0f} req/s with latency correction; "
                  "req/s, CPU and RSS: closed loop."]
    lines += ["", "Per-filter overhead (no-op chains against the empty chain, and against one filter):", ""]
    lines += overhead_table(rows, proxies)
    lines += ["", "Wasm VMs (start-up time and idle RSS of the largest no-op chain against the empty "
              "chain and against one filter; linear memory from wasp's /filters):", ""]
    lines += vm_table(rows, proxies)
    # Peers that ran no filter at all (a runtime Envoy lacks) are left out.
    peers = [
        p
        for p in proxies
        if p != "wasp" and any(n.startswith(p + "/") and split(n)[2] > 0 and "closed" in rows[n] for n in rows)
    ]
    if "wasp" in proxies and peers:
        lines += ["", "wasp against Envoy (above 1 is better for req/s, below 1 for CPU per request, p50 and p99):", ""]
        lines += ratio_table(rows, peers)
    checks = targets(rows, peers)
    if checks:
        lines += ["", "Targets:", ""] + checks
    print("\n".join(lines))


if __name__ == "__main__":
    main()
