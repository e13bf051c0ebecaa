"""A RabbitMQ cluster of three nodes of Debian's rabbitmq-server, in the namespace `mq`: own node names, ports and
data directories, clustered, with Agentry's queues mirrored to every node by policy (classic queues keep their
`x-max-priority`; see docs/cluster.md)."""
import os
import pwd
import shutil
import signal

from .shell import ChaosError, run, say, wait_for

RABBIT_BIN = "/usr/lib/rabbitmq/bin"
NODES = [("agch1", 5701), ("agch2", 5702), ("agch3", 5703)]
VHOST = "agentry-chaos"
POLICY = '{"ha-mode":"all","ha-sync-mode":"automatic"}'


class RabbitCluster:
    def __init__(self, state, network):
        self.state = os.path.join(state, "mq")
        self.network = network
        self.ns = network.namespace("mq")
        self.host = network.address("mq")
        self.user = pwd.getpwnam("rabbitmq")

    @staticmethod
    def node_name(name):
        return f"{name}@localhost"

    def urls(self, first=0):
        """The AMQP URLs of the nodes, starting with node `first`."""
        ordered = NODES[first:] + NODES[:first]
        return ",".join(f"amqp://guest:guest@{self.host}:{port}/{VHOST}" for _, port in ordered)

    def _dir(self, name):
        return os.path.join(self.state, name)

    def _env(self, name, port):
        directory = self._dir(name)
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/var/lib/rabbitmq",  # its .erlang.cookie is the cluster's shared secret
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node_name(name),
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(port + 20000),
            "RABBITMQ_MNESIA_BASE": os.path.join(directory, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(directory, "log"),
            "RABBITMQ_PID_FILE": os.path.join(directory, "pid"),
            "RABBITMQ_CONFIG_FILE": os.path.join(directory, "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(directory, "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(directory, "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": os.path.join(directory, "rabbitmq-env.conf"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": os.path.join(directory, "plugins"),
        }
        return env

    def _as_rabbit(self, name, args, check=True, timeout=120):
        port = dict(NODES)[name]
        env_args = [f"{k}={v}" for k, v in self._env(name, port).items()]
        return run(["runuser", "-u", "rabbitmq", "--", "env", "-i"] + env_args + args, ns=self.ns, check=check,
                   timeout=timeout)

    def ctl(self, name, *args, check=True, timeout=120):
        return self._as_rabbit(name, [f"{RABBIT_BIN}/rabbitmqctl", "-n", self.node_name(name)] + list(args),
                               check=check, timeout=timeout)

    def prepare(self):
        shutil.rmtree(self.state, ignore_errors=True)
        for name, port in NODES:
            directory = self._dir(name)
            os.makedirs(os.path.join(directory, "log"), exist_ok=True)
            with open(os.path.join(directory, "rabbitmq.conf"), "w") as f:
                # guest may log in from the worker hosts' addresses: this cluster is the chaos suite's alone.
                f.write(f"listeners.tcp.default = {port}\nloopback_users = none\n"
                        "log.file.level = info\nlog.console = false\n")
            with open(os.path.join(directory, "enabled_plugins"), "w") as f:
                f.write("[].\n")
            open(os.path.join(directory, "rabbitmq-env.conf"), "w").close()
        for root, dirs, files in os.walk(self.state):
            for entry in [root] + [os.path.join(root, n) for n in dirs + files]:
                os.chown(entry, self.user.pw_uid, self.user.pw_gid)
        os.chmod(self.state, 0o755)

    def start(self, name):
        self._as_rabbit(name, [f"{RABBIT_BIN}/rabbitmq-server", "-detached"])
        self.ctl(name, "wait", os.path.join(self._dir(name), "pid"), "--timeout", "120", timeout=150)
        self.ctl(name, "await_startup", "--timeout", "120", timeout=150)

    def pid(self, name):
        try:
            with open(os.path.join(self._dir(name), "pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def running(self, name):
        pid = self.pid(name)
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False

    def kill(self, name):
        """SIGKILL of the node's Erlang VM: a crash, no goodbye to its peers or its clients."""
        pid = self.pid(name)
        if pid:
            os.kill(pid, signal.SIGKILL)
            wait_for(f"node {name} to exit", lambda: not self.running(name), 30)

    def up(self):
        self.prepare()
        for name, _ in NODES:
            self.start(name)
        first = self.node_name(NODES[0][0])
        for name, _ in NODES[1:]:
            self.ctl(name, "stop_app")
            self.ctl(name, "join_cluster", first)
            self.ctl(name, "start_app")
        status = self.ctl(NODES[0][0], "cluster_status", "--formatter", "json")
        missing = [n for n, _ in NODES if self.node_name(n) not in status]
        if missing:
            raise ChaosError(f"nodes {missing} did not join the cluster: {status}")
        lead = NODES[0][0]
        self.ctl(lead, "add_vhost", VHOST)
        self.ctl(lead, "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
        self.ctl(lead, "set_policy", "-p", VHOST, "--apply-to", "queues", "agentry-ha", r"^agentry\.", POLICY)
        say(f"RabbitMQ cluster up: {', '.join(self.node_name(n) for n, _ in NODES)} at {self.host}:"
            f"{','.join(str(p) for _, p in NODES)}, vhost {VHOST}, Agentry's queues mirrored by policy")

    def ensure_running(self):
        for name, _ in NODES:
            if not self.running(name):
                say(f"starting node {name} again")
                self.start(name)

    def connection_nodes(self, connection_name):
        """The nodes where connections named `connection_name` are (from `rabbitmqctl list_connections`)."""
        for name, _ in NODES:
            if self.running(name):
                output = self.ctl(name, "list_connections", "-q", "--no-table-headers", "pid", "client_properties",
                                  check=False)
                # A connection's pid names its node: <agch1@localhost.1796614685.5747.0>
                return sorted({line.split("@")[0].lstrip("<") for line in output.splitlines()
                               if connection_name in line and line.startswith("<")})
        return []

    def queue_report(self):
        """Each Agentry queue with its arguments, policy and mirrors, from a live node."""
        for name, _ in NODES:
            if self.running(name):
                return self.ctl(name, "list_queues", "-p", VHOST, "name", "arguments", "policy", "messages",
                                "synchronised_slave_pids", "-q", "--no-table-headers", check=False)
        return ""

    def down(self):
        for name, _ in NODES:
            if self.running(name):
                self.ctl(name, "stop", check=False, timeout=60)
                if self.running(name):
                    self.kill(name)
