#!/usr/bin/env python3
"""Peer benchmarks: Celery and Dramatiq on the same RabbitMQ and PostgreSQL as Agentry, one scenario per invocation.

    Scripts/peers/setup                      # once: the virtualenv .build/peers-venv (pins: requirements.txt)
    .build/peers-venv/bin/python Scripts/peers/bench.py SYSTEM MODE SCENARIO [--events N] [--workers W]
                                                      [--rate R] [--seconds S] [--prefetch P]
        [--pool solo|prefork] [--threads T] [--broker-priority-only] [--keep-vhost] [--keep-logs]

SYSTEM celery | dramatiq; MODE bare | guarantees; SCENARIO e2e | latency | priority | exec | memory | recovery.
Human lines go first (prefixed "[peers]"); the last line is the one machine-readable line:
    RESULT system=celery mode=bare scenario=e2e workers=1 events=50000 rate=1234.5 publish_rate=... (more keys)
Exit status: 0 with a RESULT line; 1 on an error (no RESULT line); 130 when interrupted.

Files: bench.py (this harness and these notes), peers_common.py (settings from the environment and the task body both
systems run), peers_celery.py (the Celery app), peers_dramatiq.py (the Dramatiq broker and actors), requirements.txt,
setup. The harness sets PEERS_* variables and imports the system's module to publish with the system's own client
(Celery's apply_async, Dramatiq's send_with_options); the workers are the systems' own command-line workers.

== What every run does ==
- RabbitMQ vhost `bench-peers` (the host, port and user of AGENTRY_AMQP_URL, default guest@localhost:5672): deleted
  and created again with `rabbitmqctl` at the start (guest gets all permissions), so nothing is left from an earlier
  run; deleted again at the end (--keep-vhost keeps it), so no backlog of persistent messages stays on the broker.
- The task queue `bench`: durable, classic, `x-max-priority` 4 (as Agentry's queues; Agentry's priorities are 1..4),
  persistent messages (both systems' default), JSON bodies.
- Workers: started by the harness with subprocess.Popen, each in its own session (own process group), logs in a
  temporary directory (shown on an error; --keep-logs keeps it); stopped in a `finally`, also on an error or Ctrl-C
  (SIGTERM/SIGHUP to the harness take the same path): SIGTERM to each worker's main process (which passes it on to
  its children), then SIGKILL to the process group and to every process left in the session after 10 s. No process
  is left behind. Celery's worker sees SIGTERM only when its event loop wakes (a timer, up to ~10 s when idle), so
  the harness also sends a broadcast `ping` (remote control) right after the signal to wake it.
- Prefetch: 64 unacknowledged deliveries per worker process by default in every scenario (--prefetch P changes it).
  That is Agentry's: its benchmark agent has max_parallel_tasks 64 and an agent's prefetch is its limit. Both systems
  acknowledge after the task ran (Celery task_acks_late, Dramatiq always), so the prefetch counts running tasks too.
- The task body (peers_common.work) is the same for both systems: it takes (kind, seq, published), reads time.time()
  at its start and end (exec runs subprocess.run(["/bin/true"]) in between), and appends one fixed-width line
  (66 bytes: kind, seq, start, end, published) to a file of its own process with one os.write on an O_APPEND fd.
  That is the cheapest record: one syscall of a few microseconds per task, no round trip, no lock, no connection
  (a PostgreSQL insert, even batched, would cost the task a round trip or a buffer that a killed worker loses). The
  harness counts finished tasks from the files' sizes (size / 66) and reads the lines at the end. Redis is not used.
- Guarantees mode creates the result store's schema in the agentry database first and drops it (CASCADE) at the end:
  `peer_bench_celery` (Celery's task and group tables and their sequences) or `peer_bench_dramatiq`.

== Celery (celery 5.7, kombu 5.7 over py-amqp) ==
- bare: task_acks_late=True; the queue declared with x-max-priority 4 (task_queues, task_queue_max_priority);
  worker_prefetch_multiplier = the prefetch (64) with one process, so basic.qos prefetch_count = 64; no result backend
  (result_backend None, task_ignore_result=True); events off (worker_send_task_events and task_send_sent_event False);
  `celery -A peers_celery worker -Q bench -n wI@%h -P solo -c 1 --without-gossip --without-mingle
  --without-heartbeat --loglevel WARNING` (wI: w0, w1, .. one node name per worker process);
  publisher: apply_async on one producer, no publisher confirms (Celery's default).
- Pool: `-P solo -c 1` in bare mode: the task runs in the worker's own process, no pool child (without `-c 1` Celery
  counts concurrency = CPUs even for solo, and the prefetch would be 128). Measured here, 10,000 no-op tasks, 1
  worker: solo 2,331 tasks/s, prefork -c 1 645 tasks/s (a pipe round trip to the child per task): solo is 3.6x
  faster. In guarantees mode `-P prefork -c 1` is used instead: task_reject_on_worker_lost only means something with
  a pool child whose loss the parent sees, and Celery's database backend keeps a connection pool only in a forked
  child (with solo it opens a new PostgreSQL connection for every result: NullPool). Measured, 2,000 tasks: prefork
  221 tasks/s, solo 40 tasks/s. --pool solo|prefork overrides.
- Celery sets its prefetch with basic.qos global=true on the consumer's channel (RabbitMQ shows global_prefetch_count
  64): with one consumer on that channel it is the same limit as a per-consumer prefetch of 64.
- guarantees: as bare plus task_reject_on_worker_lost=True, worker_send_task_events=True, task_send_sent_event=True
  (a task-sent event per publish, task-received/started/succeeded events per task on the celeryev exchange; nothing
  consumes them), result_backend "db+postgresql://agentry:agentry@localhost:5432/agentry" (SQLAlchemy +
  psycopg2) with result_extended=True, tables in schema peer_bench_celery; publisher confirms on
  (broker_transport_options confirm_publish=True).
- Remote control (the pidbox queue per worker) stays on, as Celery's default.

== Dramatiq (dramatiq 2.2, RabbitmqBroker over pika) ==
- bare: RabbitmqBroker(middleware=[]): no middleware at all -- none of the defaults (AgeLimit, TimeLimit,
  ShutdownNotifications, Callbacks, Pipelines, Retries) is needed to run a no-op actor; max_priority=4 (queues
  declared with x-max-priority 4); no publisher confirms (the default).
- Worker: `dramatiq peers_dramatiq --processes 1 --threads 1` (a supervisor process plus one worker process, whose
  consumer thread feeds one worker thread) with dramatiq_queue_prefetch=64 in the environment (its default would be
  2 x threads; RabbitMQ shows prefetch_count 64 on the consumer of `bench`, and 1,000 on the delay queue `bench.DQ`,
  unused here). Dramatiq's natural mode is 8 threads per process. Measured, 1 worker: bare 20,000 tasks: 1 thread
  4,204 tasks/s, 8 threads 3,116 (the GIL); guarantees 5,000 tasks: 1 thread 580, 8 threads 956 (result writes
  overlap). 1 thread is kept in both modes, one task at a time as Celery's -c 1; --threads T overrides.
- guarantees: the default middleware (AgeLimit, TimeLimit, ShutdownNotifications, Callbacks, Pipelines, Retries) plus
  Results with a PostgreSQL-backed store, actors with store_results=True, confirm_delivery=True on the broker.
  Dramatiq itself ships only Redis and Memcached result backends; the PostgreSQL one is the third-party package
  dramatiq-postgres (1.4.0, psycopg 3, the only one for Dramatiq 2.x: dramatiq-pg requires Dramatiq < 2): one
  transaction per result (INSERT .. ON CONFLICT + pg_notify) on a connection pool, table result in schema
  peer_bench_dramatiq (its init creates its queue tables there too; they stay empty: the broker is RabbitMQ).
- Priority: RabbitMQ orders what it has not delivered by the message's broker_priority; a Dramatiq worker orders the
  messages it holds (its prefetch) by actor priority (lower first). The critical task is sent to a second actor
  `work_critical` (priority 0; `work` has 100), so Dramatiq can run it ahead of the 64 it holds.
  --broker-priority-only sends it to `work` with broker_priority only, to see what the prefetch does without that.
- Dramatiq restarts a consumer 3 s after a connection error (dramatiq_restart_delay, default kept).

== Scenarios ==
- e2e: N no-op tasks (default 50,000; kind N) published first; publish_rate = N / (first publish call until a
  passive queue.declare counts all N in the queue). Then W worker processes (default 1) start and drain them;
  rate = N / (first task start .. last task end), from the marks. drain_s is that span.
- latency: W workers (default 1) started and answering a probe; a steady publisher at R/s (default 1,000) for
  2 s of warm-up (not counted) and S s (default 10) measured; each task gets time.time() at its publish;
  latency = task start - publish time; p50/p99 (nearest rank) and max in ms; rate_achieved = measured publishes
  / their span. The publisher sleeps until each slot (i / R) and publishes at once when late.
  Both systems' clients publish one message at a time from the harness's one thread and, in guarantees mode, wait
  for each publisher confirm (Celery also sends a task-sent event per task): rate_achieved shows when the
  publisher cannot hold R; when the worker cannot either, the queue grows and so does the latency.
- priority: N (default 50,000) LOW tasks (priority 1) published, 1 worker started; when ~1,000 have run (min(1000,
  N/2)) one CRITICAL task (priority 4) is published; critical_start_ms = its start - its publish;
  low_started_before = LOW tasks that started between its publish and its start.
- exec: like e2e (N default 5,000, kind X), each task runs subprocess.run(["/bin/true"]).
- memory: 1 worker started, answering a probe, then idle 3 s: rss_idle_mb = VmRSS (/proc/PID/status) summed over
  every process of the worker's session (Celery: the main process, and the pool child with prefork; Dramatiq: the
  supervisor and its worker process). Then N (default 20,000) tasks are published while the worker drains them
  (it holds at most its prefetch; the backlog waits in RabbitMQ); RSS sampled every 50 ms until all ran:
  rss_peak_mb = the largest sum.
- recovery: W workers (default 1) consume a steady stream at R/s (default 200; kind R; --seconds is not used);
  after 3 s, `rabbitmqctl close_all_connections --vhost bench-peers bench` (only this vhost: other benchmarks' and
  tests' connections are left alone) closes every connection of the vhost, the publisher's and the workers'. The
  moment of the close is taken from an idle sentinel AMQP connection in the vhost that the broker closes along with
  the others. recovery_ms = from that moment to the first task start after the largest gap in task starts (what tasks
  see: the worker's reconnect, and the publisher's, whichever is later); gap_ms = that gap;
  publisher_recovery_ms = to the first publish call after the close that returned without an error;
  lost = published (calls that returned) - distinct tasks run; duplicates = task runs beyond one per task.
Every RESULT line also has prefetch=, pool= (Celery) or threads= (Dramatiq), and in guarantees mode results_stored=
(rows in the result store at the end: a check that results were written).
== What a peer cannot do (seen in these runs) ==
- Priority across the prefetch, Celery: only RabbitMQ's queue priority applies; a worker runs what it holds in the
  order received, so a CRITICAL task waits behind up to the prefetch (64) of LOW tasks already delivered.
- Priority across the prefetch, Dramatiq: its worker reorders what it holds by actor priority (work_critical), but
  only once its consumer thread has handed the message over, which competes with the worker thread for the GIL:
  between 1 and ~70 LOW tasks started before the CRITICAL one from run to run. With broker priority only
  (--broker-priority-only) it waits behind the whole prefetch, as Celery's.
- Recovery, Dramatiq: a consumer restarts a fixed 3 s after a connection error (dramatiq_restart_delay); when a task
  ended just as the connection went, its ack is retried after 5 s with the worker thread blocked meanwhile, and the
  messages the worker held run again (seen once in guarantees mode: 5.0 s, 65 duplicates). Celery reconnects at once
  (tens of ms) and runs again at most the task whose ack was lost.
- Celery's guarantees cannot use the solo pool (task_reject_on_worker_lost needs a pool child; its database backend
  reconnects per result there); on prefork -c 1 a task costs ~4.6 ms in guarantees mode (217 tasks/s) against
  ~1.6 ms in bare mode (645 tasks/s): the result row (an ORM session per task) and the task events.
- Dramatiq has no PostgreSQL result backend of its own (dramatiq-postgres is a third-party package).
- Publishing: neither client pipelines publisher confirms: in guarantees mode each publish waits for its confirm
  (Celery also sends a task-sent event), so one publishing thread gets ~400-650 (Celery) and ~900-1,200 (Dramatiq)
  tasks/s and cannot hold 1,000/s in the latency scenario.
- Locks: neither has a lock manager.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
VHOST = "bench-peers"
SCENARIOS = ("e2e", "latency", "priority", "exec", "memory", "recovery")
DEFAULT_EVENTS = {"e2e": 50000, "priority": 50000, "exec": 5000, "memory": 20000}
LOW_PRIORITY, CRITICAL_PRIORITY = 1, 4

sys.path.insert(0, HERE)


def say(message):
    print("[peers] " + message, flush=True)


def fmt(value, digits=1):
    return ("%." + str(digits) + "f") % value


# ---- settings and services ---------------------------------------------------------------------------------------

def amqp_settings():
    """(URL of the vhost bench-peers, user) from AGENTRY_AMQP_URL's host, port and credentials."""
    base = urllib.parse.urlsplit(os.environ.get("AGENTRY_AMQP_URL", "amqp://guest:guest@localhost:5672/%2f"))
    user = urllib.parse.unquote(base.username or "guest")
    return "amqp://%s/%s" % (base.netloc, urllib.parse.quote(VHOST, safe="")), user


def db_url():
    url = os.environ.get("AGENTRY_DATABASE_URL", "postgres://agentry:agentry@localhost:5432/agentry")
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme in ("postgres", "postgresql") else url


def rabbitmqctl(*args, check=True):
    command = ([] if os.geteuid() == 0 else ["sudo"]) + ["rabbitmqctl", *args]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(command), (done.stderr or done.stdout).strip()))
    return done


def reset_vhost(user):
    rabbitmqctl("delete_vhost", VHOST, check=False)
    rabbitmqctl("add_vhost", VHOST)
    rabbitmqctl("set_permissions", "-p", VHOST, user, ".*", ".*", ".*")


def db_execute(statement):
    import psycopg
    with psycopg.connect(db_url(), autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(statement)


def prepare_db(system):
    import peers_common as common
    if system == "celery":
        db_execute("DROP SCHEMA IF EXISTS %s CASCADE" % common.CELERY_SCHEMA)
        db_execute("CREATE SCHEMA %s" % common.CELERY_SCHEMA)
    else:
        import psycopg
        from dramatiq_postgres import schema
        db_execute("DROP SCHEMA IF EXISTS %s CASCADE" % common.DRAMATIQ_SCHEMA)
        with psycopg.connect(db_url()) as conn:
            with conn.cursor() as curs:
                schema.init(curs, schema=common.DRAMATIQ_SCHEMA)


def count_results(system):
    """Rows in the result store (guarantees mode): a check that results were stored."""
    import psycopg
    import peers_common as common
    table = ("%s.celery_taskmeta" % common.CELERY_SCHEMA if system == "celery"
             else "%s.result" % common.DRAMATIQ_SCHEMA)
    with psycopg.connect(db_url(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM %s" % table).fetchone()[0]


def drop_db(system):
    import peers_common as common
    db_execute("DROP SCHEMA IF EXISTS %s CASCADE" % (common.CELERY_SCHEMA if system == "celery"
                                                      else common.DRAMATIQ_SCHEMA))


# ---- marks -------------------------------------------------------------------------------------------------------

class Marks:
    """The marks the workers' processes append (peers_common.MARK_FORMAT), read incrementally."""

    def __init__(self, directory, mark_len):
        self.directory = directory
        self.mark_len = mark_len
        self.offsets = {}
        self.rows = []  # (kind, seq, start, end, published)

    def count(self):
        total = 0
        for name in os.listdir(self.directory):
            try:
                total += os.path.getsize(os.path.join(self.directory, name))
            except FileNotFoundError:
                pass
        return total // self.mark_len

    def read(self):
        """Reads the marks written since the last call; returns the new ones (and keeps all in self.rows)."""
        new = []
        for name in sorted(os.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            offset = self.offsets.get(name, 0)
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
            whole = len(data) - len(data) % self.mark_len
            self.offsets[name] = offset + whole
            for i in range(0, whole, self.mark_len):
                kind, seq, start, end, published = data[i:i + self.mark_len].split()
                new.append((kind.decode(), int(seq), float(start), float(end), float(published)))
        self.rows.extend(new)
        return new


# ---- workers -----------------------------------------------------------------------------------------------------

def session_pids(sessions):
    """PIDs of every process whose session id is one of SESSIONS (our workers' whole process trees)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[3]) in sessions:  # state ppid pgrp session ...
            pids.append(int(entry))
    return pids


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Workers:
    def __init__(self, system, mode, count, env, logdir, pool, threads):
        self.system, self.mode, self.count = system, mode, count
        self.env, self.logdir, self.pool, self.threads = env, logdir, pool, threads
        self.procs = []

    def command(self, index):
        if self.system == "celery":
            command = [sys.executable, "-m", "celery", "-A", "peers_celery", "worker", "-Q", "bench",
                       "-n", "w%d@%%h" % index, "-P", self.pool, "-c", "1", "--without-gossip", "--without-mingle",
                       "--without-heartbeat", "--loglevel", "WARNING"]
            return command
        return [sys.executable, "-m", "dramatiq", "peers_dramatiq", "--processes", "1", "--threads", str(self.threads),
                "--path", HERE, "--worker-shutdown-timeout", "5000"]

    def start(self):
        for index in range(self.count):
            log = open(os.path.join(self.logdir, "worker%d.log" % index), "wb")
            try:
                self.procs.append(subprocess.Popen(self.command(index), cwd=HERE, env=self.env, stdin=subprocess.DEVNULL,
                                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            finally:
                log.close()

    def check(self):
        for index, proc in enumerate(self.procs):
            if proc.poll() is not None:
                raise RuntimeError("worker %d exited (status %s); its log ends:\n%s"
                                   % (index, proc.returncode, self.log_tail(index)))

    def log_tail(self, index, lines=30):
        try:
            with open(os.path.join(self.logdir, "worker%d.log" % index), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def pids(self):
        return session_pids({proc.pid for proc in self.procs})

    def rss_mb(self):
        return sum(rss_kb(pid) for pid in self.pids()) / 1024.0

    def stop(self, nudge=None):
        if not self.procs:
            return
        # SIGTERM to the main process only: Celery's and Dramatiq's main processes pass it on to their children (a
        # Dramatiq worker process that gets it twice, from the group and from its parent, kills itself hard).
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            else:  # the main process is gone: its orphans get the signal themselves
                for pid in session_pids({proc.pid}):
                    try:
                        os.kill(pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
        if nudge is not None:
            nudge()
        deadline = time.time() + 10
        while time.time() < deadline and self.pids():
            for proc in self.procs:
                proc.poll()
            time.sleep(0.05)
        left = self.pids()
        if left:
            say("workers still running 10 s after SIGTERM: SIGKILL to %s" % " ".join(map(str, left)))
            for proc in self.procs:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []


# ---- publishing --------------------------------------------------------------------------------------------------

class Publisher:
    """Publishes with the system's own client, from the harness process."""

    def __init__(self, system, broker_priority_only=False):
        self.system = system
        self.broker_priority_only = broker_priority_only
        if system == "celery":
            import peers_celery
            self.app = peers_celery.app
            self.task = peers_celery.work
            if peers_celery.GUARANTEES:
                self.app.backend  # creates the result tables now, before any worker starts
            self._producer_cm = self.app.producer_or_acquire()
            self.producer = self._producer_cm.__enter__()
        else:
            import peers_dramatiq
            self.module = peers_dramatiq

    def publish(self, kind, seq, published, priority=None):
        if self.system == "celery":
            self.task.apply_async((kind, seq, published), priority=priority, producer=self.producer)
        else:
            actor = self.module.work
            if kind == "C" and not self.broker_priority_only:
                actor = self.module.work_critical
            options = {} if priority is None else {"broker_priority": priority}
            actor.send_with_options(args=(kind, seq, published), **options)

    def nudge(self):
        """Celery's worker notices SIGTERM only when its event loop wakes up (a timer, up to ~10 s later): a
        broadcast ping (remote control) wakes it at once. Dramatiq needs nothing."""
        if self.system == "celery":
            try:
                self.app.control.ping(timeout=0.2)
            except Exception:
                pass

    def close(self):
        try:
            if self.system == "celery":
                self._producer_cm.__exit__(None, None, None)
                self.app.close()
            else:
                self.module.broker.close()
                if self.module.GUARANTEES:
                    self.module.result_backend.pool.close()
        except Exception as error:  # closing after a lost connection may fail: nothing to keep then
            say("closing the publisher: %r" % error)


class QueueProbe:
    """Counts the ready messages of the task queue (passive queue.declare over pika)."""

    def __init__(self, url):
        import pika
        self.pika = pika
        self.params = pika.URLParameters(url)
        self.conn = None

    def depth(self, queue="bench"):
        if self.conn is None or not self.conn.is_open:
            self.conn = self.pika.BlockingConnection(self.params)
        channel = self.conn.channel()
        try:
            return channel.queue_declare(queue, passive=True).method.message_count
        except self.pika.exceptions.ChannelClosedByBroker:
            return 0
        finally:
            if channel.is_open:
                channel.close()

    def close(self):
        conn, self.conn = self.conn, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except self.pika.exceptions.AMQPError:
                pass  # already closed by the broker


def wait_until(predicate, timeout, workers=None, what="a condition", interval=0.02):
    deadline = time.time() + timeout
    while True:
        if workers is not None:
            workers.check()
        if predicate():
            return
        if time.time() > deadline:
            raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def steady(publisher, kind, rate, seconds, seq0):
    """Publishes rate*seconds tasks at a steady rate; returns (count, first publish time, last publish time)."""
    count = int(rate * seconds)
    t0 = time.perf_counter()
    first = last = None
    for i in range(count):
        slot = t0 + i / rate
        now = time.perf_counter()
        if slot > now:
            time.sleep(slot - now)
        last = time.time()
        if first is None:
            first = last
        publisher.publish(kind, seq0 + i, last)
    return count, first, last


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-p * len(sorted_values) // 100)))  # nearest rank: ceil(p/100 * n)
    return sorted_values[min(rank, len(sorted_values)) - 1]


# ---- scenarios ---------------------------------------------------------------------------------------------------

class Run:
    def __init__(self, args, workers, marks, publisher, probe):
        self.args, self.workers, self.marks, self.publisher, self.probe = args, workers, marks, publisher, probe

    def wait_ready(self):
        """Publishes a probe (kind W) every 0.5 s until one has run: the worker is consuming."""
        seq = 900000000
        deadline = time.time() + 60
        while True:
            self.workers.check()
            self.publisher.publish("W", seq, time.time())
            seq += 1
            wait_end = time.time() + 0.5
            while time.time() < wait_end:
                if self.marks.count() > 0:
                    return
                time.sleep(0.01)
            if time.time() > deadline:
                raise RuntimeError("the worker did not run a task within 60 s of its start")

    def publish_backlog(self, kind, n, priority=None):
        t0 = time.time()
        for seq in range(n):
            self.publisher.publish(kind, seq, 0.0, priority)
        calls = time.time() - t0
        wait_until(lambda: self.probe.depth() >= n, 120, what="%d messages in the queue" % n, interval=0.05)
        total = time.time() - t0
        self.probe.close()  # not left idle (its heartbeats unserved) while the workers drain
        say("published %d tasks: calls returned after %.2f s, all in the queue after %.2f s (%.0f/s)"
            % (n, calls, total, n / total))
        return n / total

    def drain(self, kind):
        n = self.args.events
        publish_rate = self.publish_backlog(kind, n)
        self.workers.start()
        started = time.time()
        timeout = max(120.0, n / 20.0)
        wait_until(lambda: self.marks.count() >= n, timeout, self.workers, "%d task runs" % n, interval=0.05)
        say("all %d ran %.2f s after the workers were started" % (n, time.time() - started))
        rows = [r for r in self.marks.read() if r[0] == kind]
        first = min(r[2] for r in rows)
        last = max(r[3] for r in rows)
        distinct = len({r[1] for r in rows})
        rate = n / (last - first)
        say("first task start to last task end: %.3f s: %.1f tasks/s (%d runs, %d distinct)"
            % (last - first, rate, len(rows), distinct))
        return {"rate": fmt(rate), "publish_rate": fmt(publish_rate), "drain_s": fmt(last - first, 3),
                "duplicates": len(rows) - distinct}

    def e2e(self):
        return self.drain("N")

    def exec(self):
        return self.drain("X")

    def latency(self):
        rate, seconds = self.args.rate, self.args.seconds
        self.workers.start()
        self.wait_ready()
        say("worker ready; warm-up: 2 s at %g/s" % rate)
        steady(self.publisher, "W", rate, 2, 0)
        say("measuring: %g s at %g/s" % (seconds, rate))
        count, first, last = steady(self.publisher, "M", rate, seconds, 0)
        achieved = (count - 1) / (last - first) if count > 1 else float("nan")
        measured = []

        def all_measured():
            measured.extend(r for r in self.marks.read() if r[0] == "M")
            return len(measured) >= count

        try:
            wait_until(all_measured, 60, self.workers, "%d measured task runs" % count, interval=0.05)
        except RuntimeError as error:
            say("%s: %d of %d ran" % (error, len(measured), count))
        latencies = sorted((r[2] - r[4]) * 1000.0 for r in measured)
        if not latencies:
            raise RuntimeError("none of the %d measured tasks ran within 60 s of the last publish" % count)
        say("publish-to-start ms over %d tasks: p50 %.2f p99 %.2f max %.2f"
            % (len(latencies), percentile(latencies, 50), percentile(latencies, 99), latencies[-1]))
        return {"rate_target": fmt(rate, 0) if rate == int(rate) else fmt(rate), "rate_achieved": fmt(achieved),
                "p50_ms": fmt(percentile(latencies, 50), 2), "p99_ms": fmt(percentile(latencies, 99), 2),
                "max_ms": fmt(latencies[-1], 2), "measured": len(latencies), "missing": count - len(latencies)}

    def priority(self):
        n = self.args.events
        self.publish_backlog("L", n, LOW_PRIORITY)
        self.workers.start()
        threshold = min(1000, max(1, n // 2))
        wait_until(lambda: self.marks.count() >= threshold, max(120.0, n / 20.0), self.workers,
                   "%d LOW task runs" % threshold, interval=0.005)
        low_done = self.marks.count()
        published = time.time()
        self.publisher.publish("C", n, published, CRITICAL_PRIORITY)
        say("%d LOW tasks had run: CRITICAL published" % low_done)
        critical = []

        def critical_ran():
            critical.extend(r for r in self.marks.read() if r[0] == "C")
            return bool(critical)

        wait_until(critical_ran, max(120.0, n / 20.0), self.workers, "the CRITICAL task", interval=0.02)
        start = critical[0][2]
        # A task's mark is written when it ends: a LOW task that started before the CRITICAL one may end, and be
        # marked, after the CRITICAL mark was read. Counted once the marks written meanwhile are in.
        seen = sum(1 for r in self.marks.rows if r[0] == "L" and published < r[2] < start)
        time.sleep(0.5)
        self.marks.read()
        low_before = sum(1 for r in self.marks.rows if r[0] == "L" and published < r[2] < start)
        say("CRITICAL started %.2f ms after its publish; %d LOW tasks started in between (%d marked when the CRITICAL "
            "task's mark was read)" % ((start - published) * 1000, low_before, seen))
        return {"critical_start_ms": fmt((start - published) * 1000, 2), "low_started_before": low_before,
                "low_done_at_publish": low_done}

    def memory(self):
        self.workers.start()
        self.wait_ready()
        samples = []
        end = time.time() + 3
        while time.time() < end:
            samples.append(self.workers.rss_mb())
            time.sleep(0.1)
        idle = self.workers.rss_mb()
        say("idle 3 s: RSS %.1f MB over %d processes (min %.1f, max %.1f during the 3 s)"
            % (idle, len(self.workers.pids()), min(samples), max(samples)))
        peak = [idle]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], self.workers.rss_mb())
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            n = self.args.events
            base = self.marks.count()
            t0 = time.time()
            for seq in range(n):
                self.publisher.publish("N", seq, 0.0)
            wait_until(lambda: self.marks.count() >= base + n, max(120.0, n / 20.0), self.workers,
                       "%d task runs" % n, interval=0.05)
            say("drained %d tasks in %.2f s (published while the worker ran)" % (n, time.time() - t0))
        finally:
            stop.set()
            sampler.join()
        say("peak RSS during the drain: %.1f MB" % peak[0])
        return {"rss_idle_mb": fmt(idle), "rss_peak_mb": fmt(peak[0])}

    def recovery(self):
        import pika
        rate = self.args.rate
        url = self.args.amqp_url
        self.workers.start()
        self.wait_ready()
        closed_at = []
        sentinel_ready = threading.Event()
        sentinel_stop = threading.Event()

        def sentinel():
            conn = pika.BlockingConnection(pika.URLParameters(url))
            sentinel_ready.set()
            try:
                while not sentinel_stop.is_set():
                    conn.process_data_events(time_limit=0.01)
            except pika.exceptions.AMQPError:
                closed_at.append(time.time())
                return
            conn.close()

        watcher = threading.Thread(target=sentinel, daemon=True)
        watcher.start()
        if not sentinel_ready.wait(10):
            raise RuntimeError("the sentinel connection did not open")
        say("worker ready; steady stream at %g/s; connections closed after 3 s" % rate)
        ctl = {}

        def close_all():
            ctl["start"] = time.time()
            ctl["done"] = rabbitmqctl("close_all_connections", "--vhost", VHOST, "bench", check=False)
            ctl["end"] = time.time()

        closer = threading.Thread(target=close_all, daemon=True)
        published_ok = []  # (time the call returned, seq)
        errors = 0
        t0 = time.perf_counter()
        began = time.time()
        seq = 0
        after = []
        try:
            while True:
                slot = t0 + seq / rate
                now = time.perf_counter()
                if slot > now:
                    time.sleep(slot - now)
                if seq == int(3 * rate):
                    closer.start()
                try:
                    self.publisher.publish("R", seq, time.time())
                    published_ok.append((time.time(), seq))
                except Exception as error:
                    errors += 1
                    if errors <= 3:
                        say("publish %d failed: %r" % (seq, error))
                seq += 1
                if seq % 20 == 0:
                    self.workers.check()
                    if closed_at:
                        after.extend(r for r in self.marks.read() if r[0] == "R" and r[2] > closed_at[0])
                        # two seconds of the stream ran after the close: the gap is behind us
                        if len(after) >= 2 * rate:
                            break
                if time.time() - began > 90:
                    say("no recovery within 90 s")
                    break
        finally:
            sentinel_stop.set()
        if closer.is_alive() or closer.ident is not None:
            closer.join(130)
        done = ctl.get("done")
        if done is not None and done.returncode != 0:
            raise RuntimeError("rabbitmqctl close_all_connections failed: %s" % (done.stderr or done.stdout).strip())
        if not closed_at:
            say("the sentinel did not see its connection closed: using the end of rabbitmqctl")
            closed_at.append(ctl["end"])
        tc = closed_at[0]
        say("connections closed at +%.3f s (rabbitmqctl ran %.3f s .. %.3f s)"
            % (tc - began, ctl["start"] - began, ctl["end"] - began))
        expected = {s for _, s in published_ok}
        try:
            wait_until(lambda: {r[1] for r in self.marks.read() + self.marks.rows if r[0] == "R"} >= expected,
                       20, self.workers, "the published tasks to run", interval=0.1)
        except RuntimeError as error:
            say(str(error))
        rows = sorted((r for r in self.marks.rows if r[0] == "R"), key=lambda r: r[2])
        starts = [r[2] for r in rows if r[2] >= tc - 1.0]
        gap, resumed = 0.0, None
        for a, b in zip(starts, starts[1:]):
            if b > tc and b - a > gap:
                gap, resumed = b - a, b
        if resumed is None:
            raise RuntimeError("no task ran after the connections were closed")
        ran = {r[1] for r in rows}
        first_ok = next((t for t, _ in published_ok if t > tc), None)
        recovery = (resumed - tc) * 1000
        say("largest gap in task starts %.1f ms; tasks ran again %.1f ms after the close; publisher: %d failed calls, "
            "first successful call %.1f ms after the close" % (gap * 1000, recovery, errors,
                                                                (first_ok - tc) * 1000 if first_ok else float("nan")))
        return {"recovery_ms": fmt(recovery), "gap_ms": fmt(gap * 1000),
                "publisher_recovery_ms": fmt((first_ok - tc) * 1000) if first_ok else "none",
                "publish_errors": errors, "lost": len(expected - ran), "duplicates": len(rows) - len(ran)}


# ---- main --------------------------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description="Celery and Dramatiq benchmarks (see the header of this file).")
    parser.add_argument("system", choices=("celery", "dramatiq"))
    parser.add_argument("mode", choices=("bare", "guarantees"))
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--events", type=int, help="tasks (e2e 50000, priority 50000, exec 5000, memory 20000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (e2e, exec, latency, recovery)")
    parser.add_argument("--rate", type=float, help="tasks/s (latency 1000, recovery 200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds (latency)")
    parser.add_argument("--prefetch", type=int, default=64, help="prefetch per worker process (default 64)")
    parser.add_argument("--pool", choices=("solo", "prefork"),
                        help="Celery pool (default: solo in bare mode, prefork -c 1 in guarantees mode)")
    parser.add_argument("--threads", type=int, default=1, help="Dramatiq threads per worker process (default 1)")
    parser.add_argument("--broker-priority-only", action="store_true",
                        help="Dramatiq priority scenario: the CRITICAL task on the same actor, broker priority only")
    parser.add_argument("--keep-vhost", action="store_true", help="leave the vhost bench-peers in place at the end")
    parser.add_argument("--keep-logs", action="store_true", help="keep the workers' logs and marks (path printed)")
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = DEFAULT_EVENTS.get(args.scenario, 0)
    if args.rate is None:
        args.rate = 200.0 if args.scenario == "recovery" else 1000.0
    if args.scenario in ("priority", "memory"):
        args.workers = 1
    if args.pool is None:
        args.pool = "solo" if args.mode == "bare" else "prefork"
    for name in ("events", "workers", "prefetch", "threads"):
        if getattr(args, name) < 1 and not (name == "events" and args.scenario in ("latency", "recovery")):
            parser.error("--%s must be at least 1" % name)
    if args.events >= 900000000:
        parser.error("--events must be below 900000000")
    if args.rate <= 0 or args.seconds <= 0:
        parser.error("--rate and --seconds must be positive")
    return args


def on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    amqp_url, amqp_user = amqp_settings()
    args.amqp_url = amqp_url
    tmp = tempfile.mkdtemp(prefix="peers-bench-")
    marks_dir = os.path.join(tmp, "marks")
    os.mkdir(marks_dir)
    env_settings = {
        "PEERS_MODE": args.mode, "PEERS_AMQP_URL": amqp_url, "PEERS_DB_URL": db_url(),
        "PEERS_PREFETCH": str(args.prefetch), "PEERS_MAX_PRIORITY": "4", "PEERS_MARKS": marks_dir,
    }
    os.environ.update(env_settings)  # before peers_common is imported, here and in the workers
    worker_env = dict(os.environ)
    worker_env["PYTHONPATH"] = HERE + os.pathsep + worker_env.get("PYTHONPATH", "")
    worker_env["dramatiq_queue_prefetch"] = str(args.prefetch)
    import peers_common as common

    workers = Workers(args.system, args.mode, args.workers, worker_env, tmp, args.pool, args.threads)
    publisher = probe = None
    db_prepared = False
    status = 1
    result = None
    try:
        if args.system == "celery":
            import celery
            import kombu
            versions = "celery %s, kombu %s, pool %s%s" % (celery.__version__, kombu.__version__, args.pool,
                                                          " -c 1" if args.pool == "prefork" else "")
        else:
            import dramatiq
            versions = "dramatiq %s, 1 process x %d thread(s)" % (dramatiq.__version__, args.threads)
        if args.scenario == "latency":
            load = "%g tasks/s for 2 + %g s" % (args.rate, args.seconds)
        elif args.scenario == "recovery":
            load = "%g tasks/s" % args.rate
        else:
            load = "%d tasks" % args.events
        say("%s %s %s: %s, prefetch %d, %d worker(s), %s; load average %s"
            % (args.system, args.mode, args.scenario, versions, args.prefetch, args.workers, load,
               " ".join(open("/proc/loadavg").read().split()[:3])))
        reset_vhost(amqp_user)
        if args.mode == "guarantees":
            db_prepared = True
            prepare_db(args.system)
        publisher = Publisher(args.system, args.broker_priority_only)
        probe = QueueProbe(amqp_url)
        run = Run(args, workers, Marks(marks_dir, common.MARK_LEN), publisher, probe)
        values = getattr(run, args.scenario)()
        head = {"system": args.system, "mode": args.mode, "scenario": args.scenario, "workers": args.workers}
        if args.scenario not in ("latency", "recovery"):
            head["events"] = args.events
        head.update(values)
        if args.mode == "guarantees":
            head["results_stored"] = count_results(args.system)
        head["prefetch"] = args.prefetch
        if args.system == "celery":
            head["pool"] = args.pool
        else:
            head["threads"] = args.threads
        result = "RESULT " + " ".join("%s=%s" % item for item in head.items())
        status = 0
    except KeyboardInterrupt:
        say("interrupted: stopping")
        status = 130
    except Exception:
        traceback.print_exc()
        for index in range(len(workers.procs)):
            tail = workers.log_tail(index, 15)
            if tail.strip():
                say("worker %d log (last lines):\n%s" % (index, tail))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        # (step, whether its failure fails the run: closing connections does not, leaving state behind does)
        cleanup = [("stopping the workers", lambda: workers.stop(publisher.nudge if publisher is not None else None),
                    True)]
        if probe is not None:
            cleanup.append(("closing the queue probe", probe.close, False))
        if publisher is not None:
            cleanup.append(("closing the publisher", publisher.close, False))
        if db_prepared:
            cleanup.append(("dropping the result schema", lambda: drop_db(args.system), True))
        if not args.keep_vhost:
            cleanup.append(("deleting the vhost", lambda: rabbitmqctl("delete_vhost", VHOST), True))
        for what, step, fatal in cleanup:
            try:
                step()
            except Exception as error:
                say("%s failed: %r" % (what, error))
                if fatal:
                    status = status or 1
        if args.keep_logs:
            say("workers' logs and marks kept in %s" % tmp)
        else:
            subprocess.run(["rm", "-rf", tmp], check=False)
    if result is not None and status == 0:
        print(result, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
