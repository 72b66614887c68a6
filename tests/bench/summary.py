#!/usr/bin/env python3
"""The budget table that ends `make bench`.

Reads the `BENCH <id> <value>` lines that the benchmarks print (collected in OUT/bench.log),
puts each measure against its budget from DESIGN section 11 (and issue 16's attestation
target), prints one table with pass or fail, writes it to OUT/budgets.md, and, when matplotlib
is installed (make bench installs it in .venv-bench), plots the per-write latency of the sync
benchmark's run (OUT/sync-writes.csv) to OUT/sync-writes.png.

    python3 tests/bench/summary.py OUT_DIR

Exit status: 0 when every measured budget passes, 1 when one fails, 2 when the log is missing
or a budgeted measure is absent from it (a benchmark that did not run is not a pass).
"""

import csv
import operator
import os
import sys

# (id, what, budget, comparison, unit). The comparison is what a pass needs: value OP budget.
BUDGETS = [
    ("relay.throughput_vs_socat", "relay throughput / socat -b 131072", 1.0, ">=", "x"),
    ("relay.added_p50_us.1", "relay added latency p50, 1 stream", 100.0, "<", "us"),
    ("sync.cpu_per_write_us", "enclave CPU per write, cached credentials", 1000.0, "<", "us"),
    ("sync.signatures_in_cached_writes", "RSA signatures during cached writes", 0.0, "<=", ""),
    ("daemon.submit_to_written_p50_ms", "submit -> secret written p50 (simulator)", 50.0, "<", "ms"),
    ("daemon.submits_per_s", "submits stored per second", 1000.0, ">=", "/s"),
    ("identity.unseal_restart_p50_ms", "unseal through KMS p50 (simulator)", 200.0, "<", "ms"),
    ("identity.hwm_restart_max_mib", "enclave peak memory (VmHWM) at start", 64.0, "<", "MiB"),
    ("attest.cold_docs_per_s", "attestation documents verified/s, cold chain", 500.0, ">=", "/s"),
]

# Reported beside the budgets, with no budget of their own.
INFO = [
    ("relay.added_p99_us.1", "relay added latency p99, 1 stream", "us"),
    ("relay.added_p50_us.32", "relay added latency p50, 32 streams", "us"),
    ("relay.added_p99_us.32", "relay added latency p99, 32 streams", "us"),
    ("tokio.added_p50_us.1", "tokio copy_bidirectional added p50, 1 stream", "us"),
    ("sync.cpu_per_noop_us", "enclave CPU per unchanged sync", "us"),
    ("sync.writes", "writes in the sync run", ""),
    ("attest.cached_docs_per_s", "attestation documents verified/s, cached chain", "/s"),
    ("identity.startup_restart_p50_ms", "enclave start-up p50, sealed restart", "ms"),
]

OPS = {"<": operator.lt, "<=": operator.le, ">=": operator.ge, ">": operator.gt}


def read(log):
    values = {}
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "BENCH":
                try:
                    values[parts[1]] = float(parts[2])
                except ValueError:
                    pass
    return values


def fmt(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


def plot(out, title):
    path = os.path.join(out, "sync-writes.csv")
    if not os.path.exists(path):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot (make bench installs it in .venv-bench)"
    xs, wall, aws = [], [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            xs.append(int(row["sync"]))
            wall.append(int(row["wall_us"]) / 1000)
            aws.append(int(row["aws_us"]) / 1000)
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    ax.plot(xs, wall, ".", markersize=3, label="write, wall (control request to report)")
    ax.plot(xs, aws, ".", markersize=2, label="of which AWS calls (relay, TLS, simulator)")
    ax.set_xlabel("write number (back to back)")
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.set_title(f"{title}: {len(xs)} back-to-back writes", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    png = os.path.join(out, "sync-writes.png")
    fig.tight_layout()
    fig.savefig(png)
    return f"plot: {png}"


def main():
    if len(sys.argv) != 2:
        print("usage: summary.py OUT_DIR", file=sys.stderr)
        return 2
    out = sys.argv[1]
    log = os.path.join(out, "bench.log")
    if not os.path.exists(log):
        print(f"summary: {log} is missing: run make bench", file=sys.stderr)
        return 2
    values = read(log)
    rows = ["| measure | budget | measured | result |", "|---|---|---|---|"]
    failed, missing = [], []
    for key, what, budget, op, unit in BUDGETS:
        if key not in values:
            missing.append(key)
            rows.append(f"| {what} | {op} {fmt(budget)} {unit} | not measured | MISSING |")
            continue
        v = values[key]
        ok = OPS[op](v, budget)
        if not ok:
            failed.append(key)
        rows.append(f"| {what} | {op} {fmt(budget)} {unit} | {fmt(v)} {unit} | {'pass' if ok else 'FAIL'} |")
    for key, what, unit in INFO:
        if key in values:
            rows.append(f"| {what} | - | {fmt(values[key])} {unit} | info |")
    table = "\n".join(rows)
    print("\nBudgets (DESIGN section 11), this run:\n")
    print(table)
    with open(os.path.join(out, "budgets.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    title = "sync benchmark"
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("sync benchmark:"):
                title = line.strip().split(",")[0]
    note = plot(out, title)
    if note:
        print(f"\n{note}")
    if missing:
        print(f"\nnot measured: {', '.join(missing)}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
