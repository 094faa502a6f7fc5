"""A real Ray cluster on this machine, as separate processes: a head node and worker nodes started with
``ray start`` on free local ports, in a temporary directory of their own. The tests and ``make bench``
run curation and feature extraction against it; a user can try ``--engine ray`` the same way before
pointing ``--address`` at a real cluster.

:meth:`LocalCluster.stop` kills every process that runs under the cluster's directory (each Ray process
names its session directory on its command line), so a failed test leaves nothing behind, and a
user's other Ray processes on the machine are never touched (``ray stop`` would stop them all).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# a dead node is declared dead after period x threshold (Ray's defaults: minutes of retries on a
# laptop-sized test); these apply to the GCS of a cluster started here
HEALTH_CHECK = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalCluster:
    """``with LocalCluster(head_cpus=1, worker_cpus=[1]) as c: ... c.address ...``.

    ``head_cpus`` 0 keeps tasks off the head (it only schedules); each entry of ``worker_cpus`` is one
    more node, a separate raylet with its own worker processes."""

    head_cpus: int = 1
    worker_cpus: list[int] = field(default_factory=list)
    object_store_mb: int = 128
    env: dict[str, str] = field(default_factory=dict)  # for every node's processes (e.g. PYTHONPATH for the workers)
    root: Path | None = None
    address: str = ""
    node_ports: list[int] = field(default_factory=list)  # each worker node's node-manager port

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------- start / stop

    def _ray(self, *args: str) -> None:
        # AF_UNIX socket paths are limited to ~107 bytes: a short directory of our own, not pytest's tmp_path
        env = {**os.environ, **HEALTH_CHECK, "RAY_USAGE_STATS_ENABLED": "0", **self.env}
        cmd = [str(Path(sys.executable).with_name("ray")), "start", *args, f"--temp-dir={self.root}"]
        cmd += ["--disable-usage-stats", f"--object-store-memory={self.object_store_mb << 20}"]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        if res.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr[-2000:] or res.stdout[-2000:]}")

    def start(self) -> str:
        self.root = self.root or Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        port = free_port()
        self._ray(
            "--head",
            f"--port={port}",
            f"--num-cpus={self.head_cpus}",
            "--include-dashboard=false",
            "--node-ip-address=127.0.0.1",
        )
        self.address = f"127.0.0.1:{port}"
        for cpus in self.worker_cpus:
            self.add_worker(cpus)
        log.info("local Ray cluster at %s: head %d CPUs, workers %s", self.address, self.head_cpus, self.worker_cpus)
        return self.address

    def add_worker(self, cpus: int) -> int:
        """One more node (its own raylet) -> its index in :attr:`node_ports`."""
        nm = free_port()
        self._ray(
            f"--address={self.address}",
            f"--num-cpus={cpus}",
            f"--node-manager-port={nm}",
            "--node-ip-address=127.0.0.1",
        )
        self.node_ports.append(nm)
        return len(self.node_ports) - 1

    def _pids(self, *needles: str) -> list[int]:
        """Processes whose command line holds every needle and this cluster's directory, and their
        descendants (Ray's workers retitle themselves ``ray::...``: they are found as the raylet's children)."""
        out = subprocess.run(
            ["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True
        ).stdout
        procs = []
        for line in out.splitlines():
            pid, ppid, args = (line.strip().split(None, 2) + [""])[:3]
            procs.append((int(pid), int(ppid), args))
        # the head's Ray-client proxy names the head's port, not the directory
        mine = (str(self.root), f":{self.address.rpartition(':')[2]} ") if self.address else (str(self.root),)
        found = {
            p
            for p, _, a in procs
            if any(m in a + " " for m in mine) and all(n in a for n in needles) and p != os.getpid()
        }
        grew = True
        while grew:
            more = {p for p, pp, _ in procs if pp in found and p not in found and p != os.getpid()}
            found |= more
            grew = bool(more)
        return sorted(found)

    def kill_worker_node(self, i: int = 0) -> int:
        """``kill -9`` the raylet of worker node ``i`` (its workers die with it) -> the raylet's pid."""
        out = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
        port = f"--node_manager_port={self.node_ports[i]}"
        pids = [int(ln.split()[0]) for ln in out.splitlines() if "raylet" in ln and port in ln and str(self.root) in ln]
        if len(pids) != 1:
            raise RuntimeError(f"worker node {i}: expected one raylet, found {pids}")
        os.kill(pids[0], signal.SIGKILL)
        return pids[0]

    def stop(self) -> None:
        """Kill every process of this cluster (and only those), then remove its directory."""
        if self.root is None:
            return
        for _ in range(3):  # workers may be forked while we kill: a few passes
            pids = self._pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass  # exited between the listing and the kill
            time.sleep(0.5)
        shutil.rmtree(self.root, ignore_errors=True)
