"""A scenario's verdict, from the publisher's record, the database and the handlers' journal (never from logs).

- confirmed: events the broker confirmed to the publisher (`C` lines); logged: those of them in `event_log`.
- lost: confirmed events not logged, or without a completed run (`succeeded`) of an agent that triggers on them.
- doubled: (event, agent) pairs with two completions, or two runs whose handlers overlapped in time (journal).
- double-held: two runs holding the same device lock at once (journal: the lock agent's handler runs only while its
  run holds the lock, and journals when it starts and ends).
- recovery: from the end of the fault to the last completion of an event confirmed before that end.
"""
from collections import defaultdict

from .platform import EXPECTED_AGENTS


class Record:
    def __init__(self, path):
        self.confirmed = {}  # id -> (type, priority, ms)
        self.duplicates = 0
        self.poison = 0
        self.unconfirmed = 0
        with open(path) as f:
            for line in f:
                fields = line.rstrip("\n").split("\t")
                if fields[0] == "C" and len(fields) >= 5:
                    self.confirmed[fields[1]] = (fields[2], fields[3], int(fields[4]))
                elif fields[0] == "D":
                    self.duplicates += 1
                elif fields[0] == "P":
                    self.poison += 1
                elif fields[0] == "U":
                    self.unconfirmed += 1


def journal_runs(path, ids):
    """run id -> {agent, event, worker, resources, start, end} (ns), for the events in `ids`."""
    runs = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) != 7 or fields[3] not in ids:
                continue
            kind, stamp, agent, event, run, worker, resources = fields
            entry = runs.setdefault(run, {"agent": agent, "event": event, "worker": worker,
                                          "resources": [] if resources == "-" else
                                          [r.split("=")[0] for r in resources.split(",")],
                                          "start": None, "end": None})
            if kind == "start":
                entry["start"] = int(stamp)
            else:
                entry["end"] = int(stamp)
    return runs


def overlaps(intervals):
    """Pairs of (key, a, b) whose intervals overlap, per key; intervals are (start, end, run)."""
    found = []
    for key, items in intervals.items():
        items.sort()
        latest_end, latest_run = None, None
        for start, end, run in items:
            if latest_end is not None and start < latest_end:
                found.append((key, latest_run, run))
            if latest_end is None or end > latest_end:
                latest_end, latest_run = end, run
    return found


def compute(name, record_path, journal_path, database, fault_end_ms, killed_workers, rss_start, rss_end,
            memory_flat=None):
    record = Record(record_path)
    ids = set(record.confirmed)
    rows = database.query_events(ids, """
        SELECT 'L', e.event_id FROM event_log e JOIN ids ON e.event_id = ids.id;
        SELECT 'R', r.event_id, r.agent_id, r.state,
               coalesce((extract(epoch FROM r.finished_at) * 1000)::bigint, -1), r.run_id, r.worker_id,
               (extract(epoch FROM r.started_at) * 1000)::bigint, replace(coalesce(r.message, ''), E'\n', ' ')
          FROM task_runs r JOIN ids ON r.event_id = ids.id;
        SELECT 'W', worker_id, pid FROM workers;
    """)
    logged = {r[1] for r in rows if r[0] == "L"}
    completions = defaultdict(list)  # (event, agent) -> [finished ms]
    for r in rows:
        if r[0] == "R" and r[3] == "succeeded":
            completions[(r[1], r[2])].append(int(r[4]))
    worker_pids = {r[1]: r[2] for r in rows if r[0] == "W"}

    lost = []
    for event_id, (event_type, _, _) in record.confirmed.items():
        if event_id not in logged or any((event_id, a) not in completions for a in EXPECTED_AGENTS[event_type]):
            lost.append(event_id)
    doubled_completions = [k for k, v in completions.items() if len(v) > 1]

    # Journal: a run killed with its worker (SIGKILL, no `stop` line) ended when its worker was killed.
    runs = journal_runs(journal_path, ids)
    open_ended = []
    by_pair, by_device = defaultdict(list), defaultdict(list)
    for run_id, entry in runs.items():
        if entry["start"] is None:
            continue
        end = entry["end"]
        if end is None:
            killed_at = killed_workers.get(worker_pids.get(entry["worker"]))
            end = killed_at * 1_000_000 if killed_at else float("inf")
            if not killed_at:
                open_ended.append(run_id)
        by_pair[(entry["agent"], entry["event"])].append((entry["start"], end, run_id))
        for device in entry["resources"]:
            by_device[device].append((entry["start"], end, run_id))
    doubled_runs = overlaps(by_pair)
    double_held = overlaps(by_device)

    recovery = None
    slowest = None
    if fault_end_ms is not None and not lost:
        before = [e for e, (_, _, ms) in record.confirmed.items() if ms <= fault_end_ms]
        pairs = [(min(completions[(e, a)]), e, a) for e in before for a in EXPECTED_AGENTS[record.confirmed[e][0]]]
        last, event_id, agent = max(pairs, default=(fault_end_ms, None, None))
        recovery = max(0.0, (last - fault_end_ms) / 1000)
        if event_id:
            # What happened to the event that took longest: its runs, for whoever reads results.json.
            slowest = {"event": event_id, "agent": agent, "confirmed_ms": record.confirmed[event_id][2],
                       "fault_end_ms": fault_end_ms,
                       "runs": [{"state": r[3], "worker": r[6], "started_ms": int(r[7]), "finished_ms": int(r[4]),
                                 "message": r[8]} for r in rows
                                if r[0] == "R" and r[1] == event_id and r[2] == agent]}

    verdict = {
        "scenario": name,
        "confirmed": len(record.confirmed),
        "duplicates": record.duplicates,
        "poison": record.poison,
        "unconfirmed": record.unconfirmed,
        "logged": len(logged),
        "runs_completed": sum(len(v) for v in completions.values()),
        "expected_runs": sum(len(EXPECTED_AGENTS[t]) for t, _, _ in record.confirmed.values()),
        "lost": len(lost),
        "doubled": len(doubled_completions) + len(doubled_runs),
        "double_held": len(double_held),
        "open_handlers": len(open_ended),
        "recovery_s": recovery,
        "rss_start_mb": round(sum(rss_start.values()) / 1024, 1),
        "rss_end_mb": round(sum(rss_end.values()) / 1024, 1),
        "memory_flat": memory_flat,
        "slowest": slowest,
        "examples": {"lost": lost[:5], "doubled": [list(k) for k in doubled_completions[:3]] + doubled_runs[:3],
                     "double_held": double_held[:5]},
    }
    verdict["passed"] = (verdict["lost"] == 0 and verdict["doubled"] == 0 and verdict["double_held"] == 0
                         and verdict["confirmed"] > 0 and memory_flat is not False)
    return verdict
