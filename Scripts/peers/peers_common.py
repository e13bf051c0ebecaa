"""What the Celery and Dramatiq workers of Scripts/peers/bench.py share: the settings the harness hands them through
the environment, and the task body with its mark (see the header of bench.py for why a file and not a table).

The harness (bench.py) sets these variables before it imports peers_celery / peers_dramatiq and before it starts the
workers, so that both sides of a run see the same configuration:
    PEERS_MODE          bare | guarantees
    PEERS_AMQP_URL      amqp://guest:guest@localhost:5672/bench-peers
    PEERS_DB_URL        postgresql://agentry:agentry@localhost:5432/agentry
    PEERS_PREFETCH      unacknowledged deliveries a worker may hold (basic.qos), e.g. 64
    PEERS_MAX_PRIORITY  x-max-priority of the task queue (4, as Agentry's queues)
    PEERS_MARKS         directory where each worker process appends its marks
"""

import os
import subprocess
import time

QUEUE = "bench"
MODE = os.environ.get("PEERS_MODE", "bare")
AMQP_URL = os.environ.get("PEERS_AMQP_URL", "amqp://guest:guest@localhost:5672/bench-peers")
DB_URL = os.environ.get("PEERS_DB_URL", "postgresql://agentry:agentry@localhost:5432/agentry")
PREFETCH = int(os.environ.get("PEERS_PREFETCH", "64"))
MAX_PRIORITY = int(os.environ.get("PEERS_MAX_PRIORITY", "4"))
MARKS_DIR = os.environ.get("PEERS_MARKS", "")

# Schemas (in the agentry database) that hold the result stores in guarantees mode; bench.py creates and drops them.
CELERY_SCHEMA = "peer_bench_celery"
DRAMATIQ_SCHEMA = "peer_bench_dramatiq"

# One mark per task run, fixed width so that the harness counts runs from file sizes alone:
#   KIND SEQ START END PUBLISHED\n   (times: Unix seconds with microseconds)
MARK_FORMAT = "%s %09d %17.6f %17.6f %17.6f\n"
MARK_LEN = 66

_fd = None
_fd_pid = None


def _marks_fd():
    """The append-only marks file of this process (opened lazily, again after a fork: one file per process)."""
    global _fd, _fd_pid
    pid = os.getpid()
    if _fd is None or _fd_pid != pid:
        if not MARKS_DIR:
            raise RuntimeError("PEERS_MARKS is not set")
        _fd = os.open(os.path.join(MARKS_DIR, "%d.marks" % pid), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _fd_pid = pid
    return _fd


def work(kind, seq, published):
    """The task body for both systems. KIND: N (e2e), X (exec: runs /bin/true), L (low priority), C (critical),
    W (warm-up / readiness probe), M (measured latency), R (recovery stream). SEQ: the publisher's sequence number.
    PUBLISHED: time.time() at the publisher, just before the publish call (0 when not measured)."""
    start = time.time()
    if kind == "X":
        subprocess.run(["/bin/true"], check=True)
    end = time.time()
    os.write(_marks_fd(), (MARK_FORMAT % (kind, seq, start, end, published)).encode())
