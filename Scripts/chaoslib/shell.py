"""Running commands, in the root network namespace or in one of ours, with errors that say what failed."""
import subprocess
import sys
import time


class ChaosError(Exception):
    pass


def say(message):
    print(f"[chaos] {message}", flush=True)


def run(args, ns=None, check=True, env=None, timeout=120, capture=True):
    """Runs a command (in network namespace `ns` when given) and returns its stdout."""
    full = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    try:
        done = subprocess.run(full, env=env, timeout=timeout, text=True,
                              stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.PIPE if capture else None)
    except subprocess.TimeoutExpired:
        raise ChaosError(f"`{' '.join(full)}` did not finish within {timeout} s")
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout or "").strip()
        raise ChaosError(f"`{' '.join(full)}` failed with status {done.returncode}: {detail[-2000:]}")
    return done.stdout or ""


def wait_for(what, condition, timeout, interval=0.5):
    """Waits until `condition()` is truthy and returns its value; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except ChaosError as error:
            last_error = error
        time.sleep(interval)
    raise ChaosError(f"{what}: not within {timeout} s" + (f" (last error: {last_error})" if last_error else ""))


def now_ms():
    return int(time.time() * 1000)


def fail(message):
    print(f"[chaos] error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)
