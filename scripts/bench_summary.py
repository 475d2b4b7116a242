#!/usr/bin/env python3
"""The summary of scripts/bench.sh: reads its raw runs (JSON lines), prints
the table and writes the JSON summary.

    bench_summary.py RUNS.jsonl MACHINE JSON_PATH|"" QUICK

Per scenario: roamlb and testpmd Mpps and the per-pair ratio over valid
pairs; the generator's ceilings (the testpmd-rxonly runs, pair 0); how many
pairs were generator-bound (testpmd at 90 % of the higher ceiling or more);
and whether the host changed speed during the scenario (ceilings or testpmd
runs more than 25 % apart). tests/bench_summary.rs runs it on crafted runs.
"""
import json, statistics, sys

# A pair whose testpmd run reached this share of the generator's ceiling
# measured the generator, not testpmd: its ratio overstates roamlb.
BOUND = 0.9
# Ceilings before and after the pairs, or testpmd's runs, further apart than
# this: the host changed speed during the scenario, and its ratios may
# compare unlike windows.
UNSTEADY = 0.25

runs_path, machine, json_path, quick = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
names = []
for r in runs:
    if r["scenario"] not in names:
        names.append(r["scenario"])
def med(v):
    return round(statistics.median(v), 4) if v else 0.0
out = {"machine": machine, "scenarios": []}
print()
print("machine: " + machine)
print("%-24s %-26s %-26s %-22s %-6s %-15s %s" % ("scenario", "roamlb Mpps med (min-max)", "testpmd Mpps med (min-max)", "ratio med (min-max)", "valid", "gen ceilings", "gen-bound"))
bound_any = False
unsteady_any = False
for n in names:
    rs = [r for r in runs if r["scenario"] == n]
    pairs = sorted({r["pair"] for r in rs})
    a, b, ratios = [], [], []
    ceil = [r["tx_mpps"] for r in rs if r["dut"] == "testpmd-rxonly" and r["valid"]]
    top = max(ceil) if ceil else 0.0
    bound = 0
    for p in pairs:
        ra = [r for r in rs if r["pair"] == p and r["dut"] == "roamlb"]
        rb = [r for r in rs if r["pair"] == p and r["dut"] == "testpmd"]
        if ra and rb and ra[0]["valid"] and rb[0]["valid"] and rb[0]["mpps"] > 0:
            a.append(ra[0]["mpps"]); b.append(rb[0]["mpps"]); ratios.append(ra[0]["mpps"] / rb[0]["mpps"])
            bound += int(top > 0 and rb[0]["mpps"] >= BOUND * top)
    fmt = lambda v: "%.3f (%.3f-%.3f)" % (med(v), min(v), max(v)) if v else "-"
    pairs = [p for p in pairs if p > 0]
    bound_any |= bound > 0
    unsteady = (len(ceil) > 1 and min(ceil) < (1 - UNSTEADY) * top) or (
        len(b) > 1 and min(b) < (1 - UNSTEADY) * max(b))
    unsteady_any |= unsteady
    print("%-24s %-26s %-26s %-22s %-6s %-15s %s" % (n, fmt(a), fmt(b), fmt(ratios), "%d/%d" % (len(ratios), len(pairs)),
          ("/".join("%.2f" % c for c in ceil) + ("*" if unsteady else "")) if ceil else "-", "%d/%d" % (bound, len(ratios))))
    out["scenarios"].append({
        "name": n, "roamlb_mpps": med(a), "baseline": "testpmd-5tswap", "baseline_mpps": med(b),
        "ratio": med(ratios), "generator_ceiling_mpps": round(top, 4), "generator_ceilings_mpps": ceil,
        "host_unsteady": unsteady, "generator_bound_pairs": bound,
        "runs": rs,
    })
if bound_any:
    print("gen-bound: pairs whose testpmd ran at %d%% or more of the generator's ceiling (the higher of the" % (100 * BOUND))
    print("two testpmd-rxonly runs); there the generator set the baseline and the ratio overstates roamlb.")
if unsteady_any:
    print("*: the generator's ceilings before and after the pairs, or testpmd's runs, differ by more than %d%%:" % (100 * UNSTEADY))
    print("the host changed speed during the scenario, so its pairs may compare unlike windows; rerun before drawing conclusions.")
if json_path:
    with open(json_path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote " + json_path)
