"""Hosts on one machine: network namespaces joined by veth pairs to a bridge, and cuts between two of them.

A cut makes each side's kernel send the other's packets to a MAC address nobody has (a permanent neighbour entry),
so both directions are dropped silently, as on a real partition: connections stall, new ones time out. Healing deletes
the entries; stalled TCP connections resume with their next retransmission. (The kernel here has no tc actions,
netem or nftables, and the neighbour table needs none of them.)
"""
from .shell import run, say

BRIDGE = "agch0"
PREFIX = "10.231.0"
NAMESPACE_PREFIX = "agch-"
DEAD_MAC = "02:00:00:de:ad:00"


class Network:
    def __init__(self, names):
        """`names`: the namespaces to make, besides the root one; each gets the next address on the bridge."""
        self.addresses = {"root": f"{PREFIX}.1"}
        for index, name in enumerate(names):
            self.addresses[name] = f"{PREFIX}.{index + 2}"

    @staticmethod
    def namespace(name):
        return NAMESPACE_PREFIX + name

    def address(self, name):
        return self.addresses[name]

    def up(self):
        self.down(quiet=True)
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.addresses['root']}/24", "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])
        for name, address in self.addresses.items():
            if name == "root":
                continue
            ns = self.namespace(name)
            run(["ip", "netns", "add", ns])
            run(["ip", "link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns])
            run(["ip", "link", "set", ns, "master", BRIDGE, "up"])
            run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        say(f"network up: bridge {BRIDGE} {PREFIX}.0/24, " + ", ".join(f"{n} {a}" for n, a in self.addresses.items()))

    def _device(self, name):
        return BRIDGE if name == "root" else "eth0"

    def _ns(self, name):
        return None if name == "root" else self.namespace(name)

    def cut(self, a, b):
        """Drops every packet between `a` and `b`, both ways."""
        for here, there in ((a, b), (b, a)):
            run(["ip", "neigh", "replace", self.addresses[there], "lladdr", DEAD_MAC, "dev", self._device(here),
                 "nud", "permanent"], ns=self._ns(here))

    def heal(self, a, b):
        for here, there in ((a, b), (b, a)):
            run(["ip", "neigh", "del", self.addresses[there], "dev", self._device(here)], ns=self._ns(here), check=False)

    def down(self, quiet=False):
        """Kills what still runs in our namespaces, deletes them and the bridge. Safe to call at any time."""
        listed = run(["ip", "netns", "list"], check=False)
        ours = [line.split()[0] for line in listed.splitlines() if line.startswith(NAMESPACE_PREFIX)]
        for ns in ours:
            for pid in run(["ip", "netns", "pids", ns], check=False).split():
                run(["kill", "-KILL", pid], check=False)
            run(["ip", "netns", "del", ns], check=False)
        links = run(["ip", "-o", "link", "show"], check=False)
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name == BRIDGE or name.startswith(NAMESPACE_PREFIX):
                run(["ip", "link", "del", name], check=False)
        if ours and not quiet:
            say(f"network down: removed {', '.join(ours)} and {BRIDGE}")
