"""The scenarios: each runs under the publisher's steady load (priorities in turn, exec and builtin agents, device
locks, a poison message in every 50), injects one fault, heals it, waits for the work to settle and takes a verdict."""
import os
import signal
import threading
import time

from . import verdict as verdicts
from .platform import EXPECTED_AGENTS
from .shell import ChaosError, now_ms, say, wait_for


class Timing:
    def __init__(self, quick):
        self.quick = quick
        self.warmup = 8 if quick else 15
        self.hold = 15 if quick else 30  # how long a pause or a cut lasts (the 30 s; --quick 15 s)
        self.tail = 8 if quick else 15
        self.settle = 150 if quick else 300
        self.soak = 120 if quick else 600
        self.rate = 10  # until the capacity is measured: then a third of it


class Scenario:
    def __init__(self, name, description, inject, duplicate_every=0, poison_every=50, check=None):
        self.name = name
        self.description = description
        self.inject = inject  # (suite) -> fault end (unix ms), or None for a fault with no end
        self.duplicate_every = duplicate_every
        self.poison_every = poison_every
        self.check = check  # (suite, verdict) -> extra failure text or None


# MARK: faults

def mid_run(suite, host):
    """Waits (up to 15 s) until the worker on `host` runs a handler, so that the fault hits work in progress."""
    pid = suite.platform.workers[host].pid
    try:
        wait_for(f"a run in progress on {host}", lambda: int(suite.database.query(
            "SELECT count(*) FROM task_runs r JOIN workers w USING (worker_id) "
            f"WHERE w.pid = {pid} AND r.state = 'running';")[0][0]) > 0, 15, interval=0.2)
    except ChaosError:
        say(f"  (no run in progress on {host} within 15 s; injecting anyway)")


def worker_kill(suite):
    mid_run(suite, "h1")
    suite.platform.kill_worker("h1")
    suite.killed[str(suite.killed_pid)] = now_ms()
    end = now_ms()
    time.sleep(5)
    suite.platform.start_worker("h1")
    return end


def worker_pause(suite):
    mid_run(suite, "h2")
    suite.platform.signal_worker("h2", signal.SIGSTOP)
    time.sleep(suite.timing.hold)
    suite.platform.signal_worker("h2", signal.SIGCONT)
    return now_ms()


def cut(host, peer):
    def inject(suite):
        suite.network.cut(host, peer)
        time.sleep(suite.timing.hold)
        suite.network.heal(host, peer)
        return now_ms()
    return inject


def node_kill(suite):
    publisher_nodes = suite.cluster.connection_nodes("agentry-chaos-publisher")
    victim = next(n for n in ("agch2", "agch3", "agch1") if n not in publisher_nodes)
    say(f"  killing node {victim} (publisher on {publisher_nodes or 'unknown'})")
    suite.cluster.kill(victim)
    time.sleep(suite.timing.hold / 2)
    suite.cluster.start(victim)
    return now_ms()


def publisher_node_kill(suite):
    nodes = suite.cluster.connection_nodes("agentry-chaos-publisher")
    if not nodes:
        raise ChaosError("the publisher's connection is on no node")
    say(f"  killing node {nodes[0]}, the publisher's")
    suite.cluster.kill(nodes[0])
    time.sleep(suite.timing.hold / 2)
    suite.cluster.start(nodes[0])
    return now_ms()


def postgres_restart(suite):
    suite.database.restart("immediate")
    return now_ms()


def clock_skew(suite):
    suite.platform.stop_worker("h3")
    suite.platform.start_worker("h3", skew="+5m")
    time.sleep(suite.timing.hold)
    return now_ms()


def no_fault(suite):
    time.sleep(suite.timing.hold)
    return now_ms()


def skew_check(suite, verdict):
    lost = suite.database.query(
        f"SELECT count(*) FROM task_runs WHERE state = 'lost' AND finished_at >= to_timestamp({suite.started_ms} / 1000.0);")
    declared = int(lost[0][0])
    verdict["runs_declared_lost"] = declared
    return f"{declared} runs were declared lost while a worker's clock was 5 minutes ahead" if declared else None


SCENARIOS = [
    Scenario("worker-kill", "SIGKILL of worker host h1 mid-run (its handlers die with it); started again 5 s later",
             worker_kill),
    Scenario("worker-pause", "SIGSTOP of the worker on h2 for the hold time, then SIGCONT (a paused process that "
             "comes back after others declared it lost)", worker_pause),
    Scenario("cut-broker", "network cut between h1 and the broker's host for the hold time", cut("h1", "mq")),
    Scenario("cut-database", "network cut between h2 and PostgreSQL's host for the hold time", cut("h2", "db")),
    Scenario("broker-node-kill", "SIGKILL of a RabbitMQ node the publisher is not on; restarted after half the hold",
             node_kill),
    Scenario("publisher-node-kill", "SIGKILL of the RabbitMQ node the publisher is connected to; restarted after half "
             "the hold", publisher_node_kill),
    Scenario("postgres-restart", "PostgreSQL stopped with -m immediate (a crash: every session cut, locks held, runs "
             "in flight) and started again", postgres_restart),
    Scenario("clock-skew", "the worker on h3 restarted with its clock 5 minutes ahead (libfaketime) for the hold time",
             clock_skew, check=skew_check),
    Scenario("duplicates-poison", "every 3rd event published twice with the same id, a poison message every 5th",
             no_fault, duplicate_every=3, poison_every=5),
]


class Suite:
    def __init__(self, state, network, cluster, database, platform, timing):
        self.state = state
        self.network = network
        self.cluster = cluster
        self.database = database
        self.platform = platform
        self.timing = timing
        self.sequence = 0
        self.killed = {}  # worker pid -> unix ms it was killed
        self.killed_pid = None
        self.started_ms = 0
        self.measured = 0.0
        os.makedirs(os.path.join(state, "records"), exist_ok=True)

    def baseline(self):
        for host in self.platform.hosts:
            for peer in ("mq", "db"):
                self.network.heal(host, peer)
        self.cluster.ensure_running()
        self.database.ensure_running()
        self.platform.ensure_workers()

    def progress(self, ids):
        """(events logged, (event, agent) pairs completed) of the events `ids`."""
        rows = self.database.query_events(ids, """
            SELECT (SELECT count(*) FROM event_log e JOIN ids ON e.event_id = ids.id),
                   (SELECT count(*) FROM (SELECT DISTINCT r.event_id, r.agent_id FROM task_runs r JOIN ids ON r.event_id = ids.id
                                          WHERE r.state = 'succeeded') done);
        """)
        return int(rows[0][0]), int(rows[0][1])

    def settle(self, name, record_path):
        """Waits until every confirmed event is logged and has its runs, or the settle time passes (the verdict then
        says lost)."""
        record = verdicts.Record(record_path)
        expected = sum(len(EXPECTED_AGENTS[t]) for t, _, _ in record.confirmed.values())
        deadline = time.monotonic() + self.timing.settle
        logged, done = 0, 0
        while time.monotonic() < deadline:
            try:
                logged, done = self.progress(record.confirmed)
            except ChaosError:
                logged, done = 0, 0
            if done >= expected and logged >= len(record.confirmed):
                return
            time.sleep(2)
        say(f"  {name}: {logged} of {len(record.confirmed)} events logged, {done} of {expected} runs completed after "
            f"{self.timing.settle} s of settling")

    def run(self, scenario, rate=None, load_seconds=None, inject=None, rss_samples=None):
        timing = self.timing
        self.baseline()
        say(f"{scenario.name}: {scenario.description}")
        self.started_ms = now_ms()
        self.killed_pid = self.platform.workers["h1"].pid if "h1" in self.platform.workers else None
        rss_start = self.platform.rss()
        record = os.path.join(self.state, "records", f"{scenario.name}.tsv")
        if os.path.exists(record):
            os.remove(record)
        rate = rate or timing.rate
        load_seconds = load_seconds or (timing.warmup + timing.hold + timing.tail)
        publisher = self.platform.start_publisher(record, rate, load_seconds, self.sequence, scenario.duplicate_every,
                                                  scenario.poison_every)
        self.sequence += rate * load_seconds + 1
        time.sleep(timing.warmup)
        fault_start = now_ms()
        fault_end = (inject or scenario.inject)(self)
        try:
            publisher.wait(timeout=load_seconds + 200)
        except Exception:
            publisher.kill()
            raise ChaosError(f"{scenario.name}: the publisher did not finish")
        self.settle(scenario.name, record)
        rss_end = self.platform.rss()
        flat = None
        if rss_samples is not None:
            flat = memory_flat(rss_samples)
        result = verdicts.compute(scenario.name, record, self.platform.journal, self.database, fault_end,
                                  self.killed, rss_start, rss_end, memory_flat=flat)
        result["fault_s"] = round((fault_end - fault_start) / 1000, 1) if fault_end else None
        result["description"] = scenario.description
        if scenario.check:
            problem = scenario.check(self, result)
            if problem:
                result["passed"] = False
                result["problem"] = problem
        return result

    # MARK: soak

    def capacity(self):
        """Events per second the hosts complete (every expected run) from a burst published at once."""
        self.baseline()
        record = os.path.join(self.state, "records", "capacity.tsv")
        if os.path.exists(record):
            os.remove(record)
        burst = 300 if self.timing.quick else 1000
        rss_start = self.platform.rss()
        publisher = self.platform.start_publisher(record, burst, 1, self.sequence, 0, 0)
        self.sequence += burst + 1
        publisher.wait(timeout=300)
        self.settle("capacity", record)
        result = verdicts.compute("capacity", record, self.platform.journal, self.database, None, {},
                                  rss_start, self.platform.rss())
        first = min(ms for _, _, ms in verdicts.Record(record).confirmed.values())
        rows = self.database.query_events(verdicts.Record(record).confirmed, """
            SELECT (extract(epoch FROM max(r.finished_at)) * 1000)::bigint FROM task_runs r JOIN ids ON r.event_id = ids.id
             WHERE r.state = 'succeeded';
        """)
        seconds = max(0.001, (int(rows[0][0]) - first) / 1000)
        rate = result["confirmed"] / seconds
        say(f"capacity: {result['confirmed']} events (each run by every agent that triggers on it) in {seconds:.1f} s: "
            f"{rate:.0f} events/s; lost {result['lost']}, doubled {result['doubled']}")
        return rate, result

    def measure(self):
        """Measures the capacity, and sets the scenarios' steady load to a third of it (room to catch up after a
        fault). Returns the capacity run's verdict."""
        self.measured, result = self.capacity()
        self.timing.rate = max(2, int(self.measured / 3))
        say(f"steady load for the scenarios: {self.timing.rate} events/s (a third of the capacity)")
        return result | {"description": "a burst to measure capacity", "capacity": round(self.measured)}

    def soak(self):
        capacity = self.measured
        rate = max(1, int(capacity / 2))
        seconds = self.timing.soak
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.wait(10):
                sizes = self.platform.rss()
                if sizes:
                    samples.append(sum(sizes.values()))

        sampler = threading.Thread(target=sample, daemon=True)
        scenario = Scenario("soak", f"{seconds // 60} minutes at half the measured capacity ({rate} of "
                            f"{capacity:.0f} events/s)", None)
        sampler.start()
        try:
            result = self.run(scenario, rate=rate, load_seconds=seconds,
                              inject=lambda suite: None, rss_samples=samples)
        finally:
            stop.set()
        result["memory_flat"] = memory_flat(samples)
        result["passed"] = result["passed"] and result["memory_flat"] is not False
        result["capacity"] = round(capacity)
        return result


def memory_flat(samples):
    """Whether the workers' memory stayed flat: the mean of the last fifth of the samples within 10% (or 16 MiB) of the
    mean of the second fifth (the first is warm-up). None with too few samples to say."""
    if len(samples) < 5:
        return None
    fifth = max(1, len(samples) // 5)
    early = samples[fifth:2 * fifth]
    late = samples[-fifth:]
    early_mean = sum(early) / len(early)
    late_mean = sum(late) / len(late)
    return late_mean - early_mean <= max(0.10 * early_mean, 16 * 1024)
