"""Agentry on the chaos hosts: the database schema, the topology, three chaos agents, `agentry worker` in each host
namespace, and the publisher (`agentry-bench chaos-publish`) in the root namespace."""
import glob
import os
import signal
import subprocess
import time

from .shell import ChaosError, run, say, wait_for

FAKETIME = (glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"])[0]

# What each event type must be run by: the verdict counts an event as lost when one of these has no completed run.
EXPECTED_AGENTS = {"chaos.work": ("chaos-exec", "chaos-builtin"), "chaos.lock": ("chaos-lock",)}

# The handler of the exec agents: it journals when it starts and when it ends or is stopped (the wall clock in ns, the
# agent, event, run, worker, and the locks it holds with their fencing tokens), one short line per write(2) with
# O_APPEND, so lines from every host interleave whole. The verdict reads overlapping runs and locks held by two runs
# at once from it. (A handler's children do not inherit the worker's LD_PRELOAD: the clock here is never faked.)
HANDLER = """#!/bin/sh
line() {
  printf '%s %s %s %s %s %s %s\\n' "$1" "$(date +%s%N)" "$AGENTRY_AGENT_ID" "$AGENTRY_EVENT_ID" "$AGENTRY_RUN_ID" \\
    "$AGENTRY_WORKER_ID" "${AGENTRY_RESOURCES:--}" >> "$CHAOS_JOURNAL"
}
line start
trap 'line stop; exit 143' TERM INT
cat > /dev/null
sleep "$CHAOS_WORK_SECONDS" &
wait $!
line end
echo '{"ok": true}'
"""


def definition(agent_id, trigger, handler, extra=""):
    return f"""metadata:
  id: {agent_id}
  name: {agent_id}
  version: 1.0.0
  author: chaos
  description: Runs the chaos suite's events.
goal:
  type: continuous
  description: Run every event it is given, once.
triggers:
  - type: {trigger}
    priority: normal
{extra}handler:
{handler}"""


class Platform:
    def __init__(self, root, state, network, cluster, database, hosts, binaries):
        self.root = root
        self.state = state
        self.network = network
        self.cluster = cluster
        self.database = database
        self.hosts = hosts
        self.binaries = binaries
        self.journal = os.path.join(state, "journal")
        self.handler = os.path.join(state, "handler.sh")
        self.logs = os.path.join(state, "logs")
        self.workers = {}  # host -> Popen
        self.skewed = set()
        self.launches = 0

    def env(self, first_node=0):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRY_")}
        env.update(AGENTRY_AMQP_URL=self.cluster.urls(first_node), AGENTRY_DATABASE_URL=self.database.url)
        return env

    def agentry(self, *args, timeout=180):
        done = subprocess.run([os.path.join(self.binaries, "agentry")] + list(args), env=self.env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        if done.returncode != 0:
            raise ChaosError(f"agentry {' '.join(args)} failed: {done.stdout.strip()[-2000:]}")
        return done.stdout

    def up(self, work_seconds):
        os.makedirs(self.logs, exist_ok=True)
        with open(self.handler, "w") as f:
            f.write(HANDLER)
        os.chmod(self.handler, 0o755)
        open(self.journal, "a").close()
        agents = os.path.join(self.state, "agents")
        os.makedirs(agents, exist_ok=True)
        exec_handler = (f"  exec:\n    command: [{self.handler}]\n"
                        f"    env: {{CHAOS_JOURNAL: {self.journal}, CHAOS_WORK_SECONDS: \"{work_seconds}\"}}\n")
        files = {
            "chaos-exec.yaml": definition("chaos-exec", "chaos.work", exec_handler,
                                          "config:\n  max_parallel_tasks: 8\n  timeout_seconds: 60\n"
                                          "  task_events: false\n"),
            "chaos-builtin.yaml": definition("chaos-builtin", "chaos.work", "  builtin: noop\n",
                                             "config:\n  max_parallel_tasks: 8\n  task_events: false\n"),
            "chaos-lock.yaml": definition("chaos-lock", "chaos.lock", exec_handler,
                                          "permissions:\n  devices: [take_control]\n"
                                          "config:\n  max_parallel_tasks: 4\n  timeout_seconds: 15\n"
                                          "resources:\n  - \"device:{{payload.device_id}}\"\n"),
        }
        for name, text in files.items():
            with open(os.path.join(agents, name), "w") as f:
                f.write(text)
        self.agentry("migrate")
        self.agentry("topology", "apply")
        self.agentry("agents", "apply", agents)
        for agent in ("chaos-exec", "chaos-builtin", "chaos-lock"):
            self.agentry("agents", "publish", agent)
        say("Agentry ready: migrations, topology, agents chaos-exec (exec), chaos-builtin (builtin noop), "
            "chaos-lock (exec, locks device:<payload.device_id>)")

    # MARK: workers

    def start_worker(self, host, skew=None):
        index = self.hosts.index(host)
        env = self.env(first_node=index % 3)
        if skew:
            env.update(LD_PRELOAD=FAKETIME, FAKETIME=skew, FAKETIME_DONT_FAKE_MONOTONIC="1")
            self.skewed.add(host)
        else:
            self.skewed.discard(host)
        self.launches += 1
        log = open(os.path.join(self.logs, f"worker-{host}-{self.launches}.log"), "w")
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.network.namespace(host), os.path.join(self.binaries, "agentry"), "worker",
             "--label", f"chaos-host={host}", "--exec-allow", self.handler, "--no-admin",
             "--bundles-dir", os.path.join(self.state, "bundles"), "--log-level", "notice"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.workers[host] = process
        return process

    def wait_workers_registered(self, timeout=60):
        def registered():
            pids = {str(p.pid) for p in self.workers.values() if p.poll() is None}
            rows = self.database.query("SELECT pid FROM workers WHERE status = 'running';")
            return pids <= {r[0] for r in rows}
        wait_for("every worker to register", registered, timeout, interval=1)

    def worker_alive(self, host):
        process = self.workers.get(host)
        return process is not None and process.poll() is None

    def signal_worker(self, host, signum):
        process = self.workers[host]
        os.kill(process.pid, signum)

    def kill_worker(self, host):
        """SIGKILL: the host dies mid-run (its handlers die with it: the guard's parent-death signal)."""
        process = self.workers[host]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop_worker(self, host):
        process = self.workers.get(host)
        if process and process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGCONT)
                os.kill(process.pid, signal.SIGTERM)
                process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def ensure_workers(self):
        for host in self.hosts:
            if host in self.skewed:
                self.stop_worker(host)
            if not self.worker_alive(host):
                self.start_worker(host)
        self.wait_workers_registered()

    def rss(self):
        """Resident memory of each live worker, in KiB, from /proc."""
        sizes = {}
        for host, process in self.workers.items():
            try:
                with open(f"/proc/{process.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            sizes[host] = int(line.split()[1])
            except OSError:
                pass
        return sizes

    # MARK: publisher

    def start_publisher(self, record, rate, seconds, start_seq, duplicate_every=0, poison_every=0):
        log = open(record + ".log", "w")
        process = subprocess.Popen(
            [os.path.join(self.binaries, "agentry-bench"), "chaos-publish", "--rate", str(rate), "--seconds",
             str(seconds), "--record", record, "--start-seq", str(start_seq), "--duplicate-every",
             str(duplicate_every), "--poison-every", str(poison_every)],
            env=self.env(first_node=0), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return process

    def down(self):
        for host in list(self.workers):
            self.stop_worker(host)
