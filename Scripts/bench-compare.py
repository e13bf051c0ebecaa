#!/usr/bin/env python3
"""Agentry beside Celery and Dramatiq, on the same broker and database, in one run (issue 7). Called by Scripts/bench.

    python3 Scripts/bench-compare.py --agentry-bench PATH [--amqpbench PATH] [--rounds R] [--quick] [--out BENCHMARKS.md]
    python3 Scripts/bench-compare.py --render .bench/compare-results.json [--out BENCHMARKS.md]

Every run keeps what it measured (each round's values, the sizes, the machine, the versions and the date) in
.bench/compare-results.json; --render writes the report again from such a file without measuring, for instance after
this script's report text has changed.

The report (BENCHMARKS.md) holds the tables, the targets with this run's numbers, and notes on how they were
measured; it links to docs/performance.md, written by hand, for what the numbers cost and what was tried.

Each round runs every scenario for Agentry and the peers alternately, so that the machine's drift falls on all of
them; the table gives medians and spreads (min-max) over the rounds, ratios to the peers and to the broker ceiling.

Scenarios (issue 7): (a) end-to-end throughput of a no-op handler, a backlog drained, 1 and 2 workers; (b) publish-to-
start latency at a steady 1,000 and 5,000 events/s; (c) a CRITICAL event behind a LOW backlog; (d) exec overhead,
a handler that is /bin/true; (e) locks (Agentry only: the peers have none); (f) worker RSS idle and at its peak
under (a); (g) recovery after `rabbitmqctl close_all_connections`.

The window (Agentry's max_parallel_tasks, which is its prefetch; the peers' prefetch) is 64 everywhere, and (a) runs
once more with one worker and a window of 256 for every system (not in --quick).

Systems: Agentry default (event log, run records, lifecycle events) and with per-task lifecycle events off; Celery and
Dramatiq bare and with the guarantees closest to Agentry's (Scripts/peers/bench.py says what each mode sets).
Broker ceiling: the plain rabbitmq-c program (Scripts/peers/amqpbench.c) publishing with confirms and consuming with
acks on one priority queue. (a) times the drain of a backlog published beforehand, so a ceiling counts the broker's
work during the drain: for Agentry's message pattern, per event, 2 deliveries (the event to the agent's queue and to
the event log's) and, with lifecycle events on, 2 confirmed publishes (agent.task.started and .completed, straight to
agentry.route; the worker logs them itself); for the bare peers' pattern, 1 delivery. The ceiling is
1 / (publishes / publish rate + deliveries / consume rate), the broker's work per event done back to back. The
event's own publish is not counted: it happens before the drain is timed.
"""
import argparse
import atexit
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS_PYTHON = os.path.join(ROOT, ".build", "peers-venv", "bin", "python")
PEERS_BENCH = os.path.join(ROOT, "Scripts", "peers", "bench.py")
RESULTS_FILE = os.path.join(ROOT, ".bench", "compare-results.json")


def run(command, env=None, timeout=1800):
    merged = dict(os.environ)
    merged.update(env or {})
    started = time.time()
    result = subprocess.run(command, cwd=ROOT, env=merged, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        print(output[-3000:], file=sys.stderr)
        raise RuntimeError(f"{' '.join(command)} failed with status {result.returncode}")
    print(f"    [{time.time() - started:6.1f} s] {' '.join(os.path.basename(c) if i == 0 else c for i, c in enumerate(command))}", flush=True)
    return output


def run_peer(system, mode, scenario, *arguments):
    """One scenario of Scripts/peers/bench.py; its RESULT line's values."""
    return peer_result(run([PEERS_PYTHON, PEERS_BENCH, system, mode, scenario, *map(str, arguments)]))


def number(pattern, text, name):
    match = re.search(pattern, text, re.MULTILINE)
    if not match:
        raise RuntimeError(f"cannot read {name} from:\n{text[-2000:]}")
    return float(match.group(1))


def peer_result(text):
    line = [l for l in text.splitlines() if l.startswith("RESULT ")][-1]
    values = {}
    for pair in line[len("RESULT "):].split():
        key, _, value = pair.partition("=")
        try:
            values[key] = float(value)
        except ValueError:
            values[key] = value
    return values


class Results:
    def __init__(self):
        self.values = {}  # (scenario, system) -> metric -> [values]

    def add(self, scenario, system, metric, value):
        self.values.setdefault((scenario, system), {}).setdefault(metric, []).append(value)

    def median(self, scenario, system, metric):
        values = self.values.get((scenario, system), {}).get(metric)
        return statistics.median(values) if values else None

    def spread(self, scenario, system, metric):
        values = self.values.get((scenario, system), {}).get(metric)
        if not values:
            return ""
        if len(values) == 1:
            return "1 round"
        return f"{fmt(min(values))}-{fmt(max(values))}"


def fmt(value):
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--agentry-bench")
    parser.add_argument("--render", metavar="RESULTS_JSON", help="write the report from a run's saved results, measuring nothing")
    parser.add_argument("--amqpbench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    parser.add_argument("--command", default="Scripts/bench")
    parser.add_argument("--no-peers", action="store_true", help="Agentry alone")
    args = parser.parse_args()
    if args.render:
        render_saved(args.render, args.out)
        return
    if not args.agentry_bench:
        parser.error("--agentry-bench PATH is needed to measure (or --render RESULTS_JSON to write a saved run's report)")

    # The full run keeps to 20 minutes on a 2-core machine with three rounds. (a) with one worker and (c) use the
    # issue's 50,000 events; (a) with 2 workers and with the wide window drain 10,000 (3 rounds of every system at
    # 50,000 in all three tables would take over half an hour). The peers' guarantee modes, which run 70-700
    # events/s, run in every round on 1,000 events (200 in (d)), and not in (b) (they cannot keep up with 1,000
    # events/s: their latency is the age of a growing backlog) nor in (g).
    sizes = dict(events=50000, multi_events=10000, guarantee_events=1000, latency_seconds=4, fast_latency_seconds=2, backlog=50000,
                 guarantee_backlog=1000, exec_events=2000, guarantee_exec_events=200, memory_events=3000, guarantee_memory_events=1000,
                 recovery_seconds=6, lock_seconds=4, c_messages=30000, wide_window=256,
                 soak_events=15000, exec_soak_events=3000, soak_rounds=4)
    if args.quick:
        # Within 3 minutes: no peer runs in (b) at 5,000/s, in (f) or in (g).
        sizes = dict(events=3000, multi_events=3000, guarantee_events=300, latency_seconds=2, fast_latency_seconds=2, backlog=3000,
                     guarantee_backlog=500, exec_events=300, guarantee_exec_events=100, memory_events=1000, guarantee_memory_events=300,
                     recovery_seconds=4, lock_seconds=3, c_messages=10000, wide_window=None,
                     soak_events=5000, exec_soak_events=1000, soak_rounds=2)
        args.rounds = 1
    peers = [("celery", "bare"), ("celery", "guarantees"), ("dramatiq", "bare"), ("dramatiq", "guarantees")]
    bare_peers = [p for p in peers if p[1] == "bare"]
    have_peers = os.path.exists(PEERS_PYTHON) and not args.no_peers
    if not have_peers:
        print("[compare] no peers virtualenv (Scripts/peers/setup makes it): peers left out", flush=True)
    results = Results()
    bench = args.agentry_bench
    off = {"AGENTRY_BENCH_TASK_EVENTS": "0"}
    # Agentry's runs and events stay as history until the end of the comparison, then `agentry-bench cleanup` deletes
    # them (see WorkerBench.cleanup); AGENTRY_BENCH_KEEP=1 leaves them.
    os.environ.setdefault("AGENTRY_BENCH_HISTORY", "1")
    if os.environ.get("AGENTRY_BENCH_KEEP") != "1":
        atexit.register(lambda: subprocess.run([bench, "cleanup"], cwd=ROOT))
    started = time.time()

    for round_number in range(1, args.rounds + 1):
        print(f"[compare] round {round_number} of {args.rounds}", flush=True)
        # Every peer mode in every round; the peers' memory (f) and the bare peers' recovery (g) in the first round
        # only. --quick keeps the guarantee modes to (a), and runs no peer in (b) at 5,000/s, (f) or (g).
        round_peers = peers if have_peers else []
        scenario_peers = bare_peers if args.quick and have_peers else round_peers

        def sized(name, mode):
            """A size for a peer mode: the guarantee modes' own (`guarantee_<name>`), being 5-40x slower."""
            return sizes[f"guarantee_{name}"] if mode == "guarantees" else sizes[name]
        # The broker ceiling.
        if args.amqpbench:
            env = {"AMQP_VHOST": "bench"}
            run([args.amqpbench, "setup"], env)
            out = run([args.amqpbench, "pub", "prio", str(sizes["c_messages"]), "1000"], env)
            pub = number(r"^RESULT mode=pub .* rate=([0-9.]+)", out, "C publish rate")
            out = run([args.amqpbench, "con", "prio", str(sizes["c_messages"]), "500", "1"], env)
            con = number(r"^RESULT mode=con .* rate=([0-9.]+)", out, "C consume rate")
            results.add("ceiling", "broker", "pub", pub)
            results.add("ceiling", "broker", "con", con)
            # Per event drained (the events themselves are published before the drain is timed).
            results.add("a1", "ceiling (Agentry default pattern)", "rate", 1 / (2 / pub + 2 / con))
            results.add("a1", "ceiling (lifecycle events off)", "rate", 1 / (2 / con))
            results.add("a1", "ceiling (bare peers' pattern)", "rate", con)

        for workers in ((1,) if args.quick else (1, 2)):
            scenario = f"a{workers}"
            events = sizes["events"] if workers == 1 else sizes["multi_events"]
            for label, env in (("Agentry default", {}), ("Agentry events off", off)):
                out = run([bench, "drain", str(events), str(workers)], env)
                results.add(scenario, label, "rate", number(r"^drain \d+ runs with .*: ([0-9]+) events/s", out, "drain rate"))
                if workers == 1:
                    results.add("f", label, "idle", number(r"^drain memory worker RSS MB: idle ([0-9.]+)", out, "idle RSS"))
                    results.add("f", label, "peak", number(r"^drain memory worker RSS MB: .* peak ([0-9.]+)", out, "peak RSS"))
            for system, mode in round_peers:
                if workers == 2 and mode == "guarantees":
                    continue
                label = f"{system.capitalize()} {mode}"
                results.add(scenario, label, "rate", run_peer(system, mode, "e2e", "--events", sized("events", mode) if workers == 1 else events, "--workers", workers)["rate"])

        # (a) again with a wider window, the same for every system: max_parallel_tasks (Agentry's prefetch) and the
        # peers' prefetch. Agentry writes the runs of a window in fewer, larger statements; a peer's worker runs one
        # task at a time either way. Not in --quick.
        if sizes["wide_window"]:
            window = sizes["wide_window"]
            for label, env in (("Agentry default", {}), ("Agentry events off", off)):
                out = run([bench, "drain", str(sizes["multi_events"]), "1", "--no-memory"], {**env, "AGENTRY_BENCH_MAX_PARALLEL": str(window)})
                results.add("aw", label, "rate", number(r"^drain \d+ runs with .*: ([0-9]+) events/s", out, "drain rate"))
            for system, mode in (bare_peers if have_peers else []):
                values = run_peer(system, mode, "e2e", "--events", sizes["multi_events"], "--workers", 1, "--prefetch", window)
                results.add("aw", f"{system.capitalize()} {mode}", "rate", values["rate"])

        for rate in ((1000,) if args.quick else (1000, 5000)):
            scenario = f"b{rate}"
            seconds = sizes["latency_seconds"] if rate <= 1000 else sizes["fast_latency_seconds"]
            out = run([bench, "latency", str(rate), str(seconds), "1"])
            results.add(scenario, "Agentry default", "achieved", number(r"\(achieved ([0-9.]+) events/s\)", out, "achieved rate"))
            for metric in ("p50", "p99", "max"):
                results.add(scenario, "Agentry default", metric,
                            number(rf"^latency publish-to-start ms: .*{metric} ([0-9.]+)", out, metric))
            for system, mode in (bare_peers if have_peers else []):
                label = f"{system.capitalize()} {mode}"
                try:
                    values = run_peer(system, mode, "latency", "--rate", rate, "--seconds", seconds)
                except RuntimeError as error:
                    print(f"    {label} latency at {rate}/s: {error}", flush=True)
                    continue
                results.add(scenario, label, "achieved", values.get("rate_achieved", 0))
                for metric in ("p50", "p99", "max"):
                    results.add(scenario, label, metric, values.get(f"{metric}_ms", 0))

        out = run([bench, "priority", str(sizes["backlog"])])
        results.add("c", "Agentry default", "critical_ms", number(r"^priority critical start ms: ([0-9.]+)", out, "critical start"))
        results.add("c", "Agentry default", "low_before", number(r"low runs started before it: ([0-9]+)", out, "low runs before"))
        results.add("c", "Agentry default", "received_ms", number(r"^priority critical received by the worker ms: ([0-9.]+)", out, "critical received"))
        results.add("c", "Agentry default", "low_dispatched_after", number(r"received after its publish: ([0-9]+)", out, "low delivered after the publish"))
        results.add("c", "Agentry default", "low_overtaking", number(r"overtaking it in the worker\): ([0-9]+)", out, "low overtaking"))
        for system, mode in scenario_peers:
            label = f"{system.capitalize()} {mode}"
            values = run_peer(system, mode, "priority", "--events", sized("backlog", mode))
            results.add("c", label, "critical_ms", values.get("critical_start_ms", 0))
            results.add("c", label, "low_before", values.get("low_started_before", 0))

        out = run([bench, "exec", str(sizes["exec_events"])])
        results.add("d", "Agentry default", "rate", number(r"^exec \d+ runs with .*: ([0-9]+) events/s", out, "exec rate"))
        for system, mode in scenario_peers:
            label = f"{system.capitalize()} {mode}"
            results.add("d", label, "rate", run_peer(system, mode, "exec", "--events", sized("exec_events", mode))["rate"])
            if args.quick or round_number > 1:
                continue
            values = run_peer(system, mode, "memory", "--events", sized("memory_events", mode))
            results.add("f", label, "idle", values.get("rss_idle_mb", 0))
            results.add("f", label, "peak", values.get("rss_peak_mb", 0))

        # (f) under sustained load, in the first round only: one worker runs soak_rounds x soak_events events while
        # they are published; its RSS after the first batch and after the last must not differ by the events run.
        if round_number == 1:
            # The same with an exec handler (/bin/true): each run also starts and cancels its timeout's timer.
            for label, count, handler in (("Agentry default", sizes["soak_events"], []),
                                          ("Agentry exec /bin/true", sizes["exec_soak_events"], ["exec"])):
                out = run([bench, "soak", str(count), str(sizes["soak_rounds"]), *handler])
                results.add("f", label, "soak_first", number(r"^soak worker RSS MB .*\(first ([0-9.]+)", out, f"{label}: soak RSS first"))
                results.add("f", label, "soak_last", number(r"^soak worker RSS MB .* last ([0-9.]+),", out, f"{label}: soak RSS last"))

        out = run([bench, "recovery", str(sizes["recovery_seconds"])])
        results.add("g", "Agentry default", "ms", number(r"^recovery ms: ([0-9.]+)", out, "recovery"))
        for system, mode in (bare_peers if round_number == 1 and not args.quick and have_peers else []):
            label = f"{system.capitalize()} {mode}"
            values = run_peer(system, mode, "recovery", "--seconds", sizes["recovery_seconds"])
            results.add("g", label, "ms", values.get("recovery_ms", 0))

        pg = run(["pgbench", "-n", "-M", "prepared", "-c", "1", "-T", str(sizes["lock_seconds"]), "-f", write_pgbench_script(),
                  os.environ.get("AGENTRY_DATABASE_URL", "postgres://agentry:agentry@localhost:5432/agentry")])
        results.add("e", "pgbench raw", "pairs", number(r"^tps = ([0-9.]+)", pg, "pgbench tps"))
        out = run([bench, "locks", str(sizes["lock_seconds"])])
        results.add("e", "Agentry locks", "pairs", number(r"^locks uncontended \d+ pairs in [0-9.]+ s: ([0-9]+) pairs/s", out, "lock pairs"))
        results.add("e", "Agentry locks", "contended", number(r"^locks contended .*: ([0-9]+) pairs/s", out, "contended pairs"))
        results.add("e", "Agentry locks", "handoff_p99", number(r"^locks hand-off ms: .* p99 ([0-9.]+)", out, "hand-off p99"))

    elapsed = time.time() - started
    run_info = dict(rounds=args.rounds, quick=args.quick, command=args.command, sizes=sizes, have_peers=have_peers,
                    elapsed=elapsed, machine=machine(), versions=versions(), date=time.strftime("%Y-%m-%d", time.gmtime()))
    os.makedirs(os.path.dirname(RESULTS_FILE), exist_ok=True)
    with open(RESULTS_FILE, "w") as file:
        json.dump({**run_info, "values": [dict(scenario=scenario, system=system, metric=metric, values=values)
                                          for (scenario, system), metrics in results.values.items()
                                          for metric, values in metrics.items()]}, file, indent=1)
    report = render(results, run_info)
    print(report)
    with open(args.out, "w") as file:
        file.write(report)
    print(f"[compare] wrote {args.out} (what was measured: {os.path.relpath(RESULTS_FILE, ROOT)})")


def render_saved(path, out):
    """The report of a saved run (RESULTS_FILE), written to `out`."""
    try:
        with open(path) as file:
            saved = json.load(file)
        results = Results()
        for entry in saved.pop("values"):
            for value in entry["values"]:
                results.add(entry["scenario"], entry["system"], entry["metric"], value)
        report = render(results, saved)
    except (OSError, ValueError, KeyError, TypeError) as error:
        sys.exit(f"cannot render {path}: {error!r} (expected the JSON that a run writes to {os.path.relpath(RESULTS_FILE, ROOT)})")
    with open(out, "w") as file:
        file.write(report)
    print(f"[compare] wrote {out} from {path}")


def write_pgbench_script():
    path = os.path.join(ROOT, ".build", "pgbench-advisory.sql")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        file.write("SELECT pg_try_advisory_lock(4242424242);\nSELECT pg_advisory_unlock(4242424242);\n")
    return path


def versions():
    def output(command):
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:
            return "unknown"
    lines = [f"- Swift: {output(['swift', '--version']).splitlines()[0] if output(['swift', '--version']) else 'unknown'}",
             f"- RabbitMQ: {output(['rabbitmqctl', 'version']).splitlines()[-1] if output(['rabbitmqctl', 'version']) else 'unknown'}",
             f"- PostgreSQL: {output(['psql', '--version'])}",
             f"- Python: {platform.python_version()}"]
    if os.path.exists(PEERS_PYTHON):
        probe = "import celery, kombu, dramatiq; print('celery', celery.__version__ + ', kombu', kombu.__version__ + ', dramatiq', dramatiq.__version__)"
        lines.append("- Peers: " + output([PEERS_PYTHON, "-c", probe]))
    return "\n".join(lines)


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as file:
            memory = int(file.readline().split()[1]) // 1024
    except OSError:
        memory = 0
    return f"{os.cpu_count()} cores ({cpu}), {memory:,} MiB RAM"


def targets(results):
    """The targets, each with this run's medians and whether it is met."""
    out = ["## Targets", "", "| target | this run | |", "|---|---|---|"]

    def row(target, value, met):
        out.append(f"| {target} | {value} | {'met' if met else 'not met'} |")

    def ratio_row(target, scenario, system, metric, other_system, other_metric, at_least):
        value = results.median(scenario, system, metric)
        other = results.median(scenario, other_system, other_metric)
        if value and other:
            row(target, f"{value / other:.2f}× ({fmt(value)} against {fmt(other)})", value / other >= at_least)

    default = results.median("a1", "Agentry default", "rate")
    if default is not None:
        row("(a) everything on, at least 3,000 events/s with one worker", f"{fmt(default)} events/s", default >= 3000)
    ratio_row("(a) everything on, at least 3× Celery with its guarantees", "a1", "Agentry default", "rate",
              "Celery guarantees", "rate", 3)
    ratio_row("(a) lifecycle events off, at least bare Dramatiq's rate", "a1", "Agentry events off", "rate",
              "Dramatiq bare", "rate", 1)
    ratio_row("(a) everything on, at least half the broker ceiling for its message pattern", "a1", "Agentry default", "rate",
              "ceiling (Agentry default pattern)", "rate", 0.5)
    ratio_row("(a) lifecycle events off, at least half the broker ceiling for its message pattern", "a1", "Agentry events off",
              "rate", "ceiling (lifecycle events off)", "rate", 0.5)
    p99 = results.median("b1000", "Agentry default", "p99")
    if p99 is not None:
        row("(b) p99 publish-to-start under 20 ms at 1,000 events/s", f"{fmt(p99)} ms", p99 < 20)
    low = results.median("c", "Agentry default", "low_before")
    if low is not None:
        row("(c) the CRITICAL event starts before any LOW run that was not already running",
            f"{fmt(low)} LOW runs started between its publish and its start", low == 0)
        overtaking = results.median("c", "Agentry default", "low_overtaking")
        if overtaking is not None:
            row("(c) the worker's part: no LOW delivery that reached it after the CRITICAL one starts first",
                f"{fmt(overtaking)}", overtaking == 0)
    peak = results.median("f", "Agentry default", "peak")
    if peak is not None:
        # Under load: the peak of a drain, and the RSS after the sustained run, whichever is higher.
        sustained = max([v for v in (results.median("f", "Agentry default", "soak_last"),
                                     results.median("f", "Agentry exec /bin/true", "soak_last")) if v is not None], default=None)
        highest = max(peak, sustained or 0)
        row("(f) worker RSS under load under 100 MB", f"{fmt(highest)} MB" + (f" (drain peak {fmt(peak)}, after the sustained run {fmt(sustained)})"
                                                                           if sustained is not None else ""), highest < 100)
    ratio_row("(e) uncontended lock pairs at least half the raw pgbench rate (issue 5)", "e", "Agentry locks", "pairs",
              "pgbench raw", "pairs", 0.5)
    handoff = results.median("e", "Agentry locks", "handoff_p99")
    if handoff is not None:
        row("(e) lock hand-off p99 under 50 ms (issue 5)", f"{fmt(handoff)} ms", handoff < 50)
    return out + ["", "Why those not met are not, and what was tried: [docs/performance.md](docs/performance.md).", ""]


def render(results, run):
    """The report: `run` says how the results were measured (rounds, quick, command, sizes, have_peers, elapsed, machine,
    versions)."""
    quick, sizes, have_peers, elapsed = run["quick"], run["sizes"], run["have_peers"], run["elapsed"]
    systems = ["Agentry default", "Agentry events off"] + ([f"{s.capitalize()} {m}" for s, m in
                                                            [("celery", "bare"), ("celery", "guarantees"), ("dramatiq", "bare"), ("dramatiq", "guarantees")]]
                                                           if have_peers else [])
    when = f" on {run['date']}" if run.get("date") else ""
    lines = ["# Benchmarks", "",
             f"Agentry beside Celery and Dramatiq on the same RabbitMQ and PostgreSQL, {run['rounds']} round(s), alternating within each "
             f"round; medians, with min-max over the rounds. Measured by `{run['command']}`{when} in {elapsed / 60:.1f} minutes. "
             "Written by `Scripts/bench-compare.py`; what these numbers cost, how they are measured and what was tried: "
             "[docs/performance.md](docs/performance.md).", ""]
    if quick:
        lines.extend(["> `--quick`: one round on small numbers, for a first look; the full run (`Scripts/bench`) gives the numbers "
                      "to quote.", ""])
    lines += [
             f"Machine: {run['machine']}.", "", run["versions"], ""]

    def table(title, scenario, metrics, names, better, absent=None):
        """`absent`: why a system has no row here (a peer that cannot do the scenario, or a mode left out for time), said
        in the table rather than left out."""
        rows = [s for s in systems + [k[1] for k in results.values if k[0] == scenario and k[1] not in systems] if (scenario, s) in results.values]
        if not rows:
            return
        lines.extend([f"## {title}", "", "| system | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)])
        extras = [s for s in rows if s not in systems]
        # The measured rows first where they are all of their own (the locks' table), then the systems that have none.
        for system in (systems + extras) if any(s in rows for s in systems) else (extras + systems):
            if system not in rows:
                # Keyed by system ("Celery guarantees") or by mode ("guarantees").
                reason = (absent or {}).get(system) or (absent or {}).get(system.split(" ")[-1])
                if reason:
                    lines.append(f"| {system} | {reason} |" + " |" * (len(metrics) - 1))
                continue
            cells = []
            for metric in metrics:
                median = results.median(scenario, system, metric)
                cells.append(f"{fmt(median)} ({results.spread(scenario, system, metric)})" if median is not None else "n/a")
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
        lines.append("")
        if better:
            lines.extend(better(rows))
            lines.append("")

    def ratios(scenario):
        def lines_for(rows):
            out = []
            agentry = results.median(scenario, "Agentry default", "rate")
            off = results.median(scenario, "Agentry events off", "rate")
            for system in rows:
                if system.startswith("Agentry") or system.startswith("ceiling"):
                    continue
                value = results.median(scenario, system, "rate")
                if value and agentry:
                    out.append(f"- Agentry default / {system}: {agentry / value:.2f}×" + (f"; events off / {system}: {off / value:.2f}×" if off else ""))
            # Each system against the ceiling of its own message pattern.
            own = [(system, ceiling) for system, ceiling in (("Agentry default", "ceiling (Agentry default pattern)"),
                                                            ("Agentry events off", "ceiling (lifecycle events off)"),
                                                            ("Celery bare", "ceiling (bare peers' pattern)"),
                                                            ("Dramatiq bare", "ceiling (bare peers' pattern)"))
                   if results.median(scenario, system, "rate") and results.median(scenario, ceiling, "rate")]
            if own:
                out.append("- Against the broker ceiling of its own message pattern: " + "; ".join(
                    f"{system} {results.median(scenario, system, 'rate') / results.median(scenario, ceiling, 'rate'):.2f}×"
                    for system, ceiling in own))
            return out
        return lines_for

    # Why a system has no row in a table, said there (the issue: "say so in the table rather than leaving it out").
    for_time = "not run in `--quick`" if quick else "not run: left out to keep the full run within 20 minutes"
    one_worker = {"guarantees": "not run: the guarantee modes (70-700 events/s) drain with 1 worker only, to keep the full run within 20 minutes"}
    table(f"(a) End-to-end throughput, no-op handler, {sizes['events']:,} events waiting, 1 worker (events/s)", "a1", ["rate"], ["events/s"], ratios("a1"))
    table(f"(a) The same with 2 workers, {sizes['multi_events']:,} events waiting (events/s)", "a2", ["rate"], ["events/s"], ratios("a2"), one_worker)
    if sizes.get("wide_window"):
        table(f"(a) The same, 1 worker, {sizes['multi_events']:,} events waiting, with a window of {sizes['wide_window']} (Agentry's max_parallel_tasks and prefetch, the peers' "
              f"prefetch; events/s)", "aw", ["rate"], ["events/s"], ratios("aw"), one_worker)
    for rate in (1000, 5000):
        seconds = sizes["latency_seconds"] if rate <= 1000 else sizes["fast_latency_seconds"]
        table(f"(b) Publish-to-start latency at {rate:,} events/s for {seconds} s (ms)", f"b{rate}",
              ["achieved", "p50", "p99", "max"], ["achieved events/s", "p50", "p99", "max"], None,
              {"guarantees": f"not run: it cannot keep up with {rate:,} events/s (70-700 events/s in (a)), so its latency "
                             "would be the age of a growing backlog"})
    def priority_notes(rows):
        return ["- Split by when each LOW run's delivery reached the worker (`task_runs.received_at`; Agentry only): "
                "the rest of the LOW runs started meanwhile were in the worker's prefetch window already when the CRITICAL "
                "event was published; those delivered after its publish were handed out by the broker before it had queued "
                "the CRITICAL event; those delivered after the CRITICAL one itself overtook it in the worker. The peers record no "
                "delivery's arrival, hence n/a."]
    table(f"(c) A CRITICAL event published behind {sizes['backlog']:,} LOW events", "c",
          ["critical_ms", "low_before", "received_ms", "low_dispatched_after", "low_overtaking"],
          ["CRITICAL starts after (ms)", "LOW runs started meanwhile", "CRITICAL reaches the worker after (ms)",
           "of them, delivered after its publish", "of them, delivered after it"], priority_notes, {"guarantees": for_time})
    table(f"(d) Exec handler `/bin/true`, {sizes['exec_events']:,} events (runs/s)", "d", ["rate"], ["runs/s"], None, {"guarantees": for_time})
    table("(e) Locks (Agentry only: Celery and Dramatiq have no resource locks)", "e", ["pairs", "contended", "handoff_p99"],
          ["uncontended pairs/s", "16 owners on 4 resources, pairs/s", "hand-off p99 ms"], None,
          {"bare": "cannot: no resource locks", "guarantees": "cannot: no resource locks"})
    # The sustained run's columns (runs saved before it existed have none).
    soaked = sizes.get("soak_events", 0) * sizes.get("soak_rounds", 0)
    soak_columns = ([("soak_first", "sustained: after the first batch"),
                     ("soak_last", f"after {sizes['soak_rounds']} batches (Agentry only)")] if soaked else [])
    table("(f) Worker memory, RSS (MB)", "f", ["idle", "peak"] + [c[0] for c in soak_columns],
          ["idle", "peak under (a)"] + [c[1] for c in soak_columns], None, {"bare": for_time, "guarantees": for_time})
    table("(g) Recovery after `rabbitmqctl close_all_connections` (ms until work flows again)", "g", ["ms"], ["ms"], None,
          {"bare": for_time, "guarantees": for_time if quick else "not run: left out to keep the full run within 20 minutes "
                                                                        "(the bare mode uses the same client library and its reconnection)"})
    lines.extend(targets(results))
    # A saved run may have the guarantee modes in its first round only.
    rounds_run = max((len(results.values.get(("a1", f"{system} guarantees"), {}).get("rate", [])) for system in ("Celery", "Dramatiq")), default=0)
    guarantee_rounds = ("in the first round only (no spread)," if rounds_run == 1 and run["rounds"] > 1
                        else "in every round (the spread in (a), (c) and (d) is over the rounds),")
    lines.extend(["## Notes", "",
                  "- The broker ceiling rows in (a) come from the C program's publish and consume rates in the same round: per event drained, the "
                  "deliveries and publishes the broker does during the drain (the events themselves were published before it), done back to "
                  "back (see the header of Scripts/bench-compare.py).",
                  "- What each peer mode sets, and what a peer cannot do, is in the header of Scripts/peers/bench.py.",
                  f"- The peers' guarantee modes run at 70-700 events/s. To keep the whole run to its time budget they run "
                  f"{guarantee_rounds} on fewer events: {sizes['guarantee_events']:,} in (a) (1 worker only), a backlog of "
                  f"{sizes['guarantee_backlog']:,} in (c), {sizes['guarantee_exec_events']:,} in (d), {sizes['guarantee_memory_events']:,} in (f) (first round only). "
                  "They are left out of (b), as they cannot keep up with 1,000 events/s (their latency there is the age of a "
                  "growing backlog), and of (g). The bare peers' recovery (g) and memory (f) run in the first round only "
                  "(their RSS moves by under 1 MB between rounds).",
                  *([f"- (f)'s sustained columns: one worker runs {sizes['soak_rounds']} batches of events, each published while it "
                     f"runs, {sizes['soak_events']:,} per batch with the no-op handler (everything on) and "
                     f"{sizes['exec_soak_events']:,} with `/bin/true`; its RSS after the first batch and after the last "
                     "(`agentry-bench soak`), in the first round. A worker's memory must not grow with the events it has run."]
                    if "exec_soak_events" in sizes else []),
                  "- The window is 64 deliveries in every scenario (Agentry: `max_parallel_tasks: 64`, whose prefetch it is; the "
                  "peers: prefetch 64), except the (a) table that says otherwise.",
                  "- Agentry's runs and events stay in PostgreSQL for the whole run, as a deployment's history does, and are "
                  "deleted at its end (`AGENTRY_BENCH_HISTORY=1`, `agentry-bench cleanup`): a worker that prepares its statements "
                  "on a table just emptied of the previous drain's runs measures a state a deployment meets only after "
                  "deleting its history (docs/performance.md, \"How it is measured\").",
                  "- `--quick` runs (b) at 1,000 events/s only, and no peer in (f) or (g).", ""])
    return "\n".join(lines)


if __name__ == "__main__":
    main()
