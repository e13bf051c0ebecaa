"""PostgreSQL for the chaos suite: an instance of its own (initdb into the state directory) in the namespace `db`,
restartable at will without touching any other cluster on the machine. Queries for the verdict go through psql."""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile

from .shell import ChaosError, run, say, wait_for

DATABASE = "agentry_chaos"
USER = "agentry"
PASSWORD = "agentry"


def pg_bin(tool):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise ChaosError(f"no PostgreSQL {tool} under /usr/lib/postgresql (install postgresql: Scripts/services)")
    return found[-1]


class Postgres:
    def __init__(self, state, network):
        self.dir = os.path.join(state, "pg")
        self.data = os.path.join(self.dir, "data")
        self.ns = network.namespace("db")
        self.host = network.address("db")
        self.subnet = network.address("root").rsplit(".", 1)[0] + ".0/24"
        self.user = pwd.getpwnam("postgres")

    @property
    def url(self):
        return f"postgres://{USER}:{PASSWORD}@{self.host}:5432/{DATABASE}"

    def _as_postgres(self, args, check=True, timeout=120):
        return run(["runuser", "-u", "postgres", "--"] + args, ns=self.ns, check=check, timeout=timeout)

    def up(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self._as_postgres([pg_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8"])
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\nhost all all 127.0.0.1/32 trust\n"
                    f"host all all {self.subnet} scram-sha-256\n")
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            f.write(f"listen_addresses = '127.0.0.1,{self.host}'\nport = 5432\n"
                    f"unix_socket_directories = '{self.dir}'\nmax_connections = 300\n"
                    "password_encryption = 'scram-sha-256'\n")
        self.start()
        self.sql_local(f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
        self.sql_local(f"CREATE DATABASE {DATABASE} OWNER {USER}")
        say(f"PostgreSQL up at {self.host}:5432, database {DATABASE} (data in {self.data})")

    def start(self):
        self._as_postgres([pg_bin("pg_ctl"), "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "-t", "60",
                           "start"], timeout=90)

    def restart(self, mode="immediate"):
        """Stops the server (`immediate`: no checkpoint, every session cut, as a crash) and starts it again."""
        self._as_postgres([pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"], timeout=90)
        self.start()

    def running(self):
        done = subprocess.run(["ip", "netns", "exec", self.ns, pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", "5432"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return done.returncode == 0

    def ensure_running(self):
        if not self.running():
            say("starting PostgreSQL again")
            self.start()

    def sql_local(self, statement):
        return self._as_postgres(["psql", "-h", self.dir, "-p", "5432", "-U", "postgres", "-d", "postgres",
                                  "-v", "ON_ERROR_STOP=1", "-Atqc", statement])

    def query(self, script, timeout=300):
        """Runs a psql script as the Agentry role from the root namespace, across the bridge; rows tab-separated."""
        env = dict(os.environ, PGPASSWORD=PASSWORD)
        done = subprocess.run(["psql", "-h", self.host, "-p", "5432", "-U", USER, "-d", DATABASE, "-v",
                               "ON_ERROR_STOP=1", "-AtqF", "\t", "-f", "-"], input=script, text=True, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        if done.returncode != 0:
            raise ChaosError(f"psql failed: {done.stderr.strip()[-2000:]}")
        return [line.split("\t") for line in done.stdout.splitlines() if line]

    def query_events(self, ids, script):
        """`query` with a temporary table `ids (id)` holding the event ids `ids`, for `script` to join with."""
        with tempfile.NamedTemporaryFile("w", prefix="agentry-chaos-ids-", suffix=".txt") as f:
            f.write("".join(i + "\n" for i in sorted(ids)))
            f.flush()
            return self.query(f"CREATE TEMP TABLE ids (id text PRIMARY KEY);\n\\copy ids FROM '{f.name}'\n{script}")

    def down(self):
        if os.path.isdir(self.data):
            self._as_postgres([pg_bin("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"], check=False, timeout=60)
