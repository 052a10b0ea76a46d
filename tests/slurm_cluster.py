"""A real SLURM cluster on this machine, for the tests and for trying the sbatch templates by hand.

Debian's ``slurm-wlm`` and ``munge`` (``apt-get install slurm-wlm munge``) run unchanged: ``munged`` with
a fresh key, ``slurmctld`` and one ``slurmd`` per node, all on 127.0.0.1, from a scratch directory that
holds the config, the state, the logs and the sockets; nothing under /etc or /var is read or written.
Every node is this host, with the CPUs given: nodes beyond the first are further ``slurmd`` processes on
other ports, started with ``-N <node>`` (SLURM's multiple-slurmd mode, meant for testing).
The plugins are the ones that need neither systemd nor cgroups (``proctrack/linuxproc``, ``task/none``),
no accounting database, and a short ``KillWait`` so a cancelled job's processes are gone in seconds.

The daemons and the jobs run as the user who starts them (``SlurmUser``; only tried as root, in a
container). Commands reach the cluster through ``SLURM_CONF`` (``env``).

By hand, from the repository root (Ctrl+C stops the cluster and ends its jobs)::

    python tests/slurm_cluster.py --dir /tmp/slurm --nodes 1 --cpus 2
    export SLURM_CONF=/tmp/slurm/slurm.conf   # in another shell; then sinfo, sbatch, squeue, scancel
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "scontrol", "scancel", "sinfo", "squeue", "srun")
SBIN = ("/usr/sbin", "/sbin")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def missing_binaries() -> list[str]:
    """The SLURM and munge programs this machine lacks (empty when a cluster can start)."""
    return [name for name in (*DAEMONS, *CLIENTS) if _which(name) is None]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class SlurmCluster:
    """A SLURM cluster of ``nodes`` nodes (``<host>``, ``<host>-n2``...), each this host with ``cpus`` CPUs.

    Args:
        root: scratch directory for the config, state, logs and sockets (created).
        nodes: number of nodes, each a ``slurmd`` process on this host.
        cpus: CPUs each node offers (``SlurmdParameters=config_overrides``: more than the host has is
            allowed, so two 1-CPU tasks can share a small machine).
    """

    def __init__(self, root: Path, *, nodes: int = 1, cpus: int = 2) -> None:
        self.root = Path(root)
        # Lightning's MASTER_ADDR is the first host of SLURM_NODELIST (a sorted host list), so the first node
        # is named after this host, which resolves (SLURM refuses a "localhost" node beside others), and the
        # others sort after it: <host>-n2, <host>-n3...
        host = socket.gethostname().split(".")[0]
        self.nodes = [host, *(f"{host}-n{i + 1}" for i in range(1, nodes))]
        self.cpus = cpus
        self.conf = self.root / "slurm.conf"
        self._procs: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        """Variables that point SLURM's commands at this cluster (add to ``os.environ``)."""
        return {"SLURM_CONF": str(self.conf)}

    def start(self, *, timeout: float = 60) -> SlurmCluster:
        """Writes the config and a munge key, starts the daemons and waits until every node is idle (at
        most ``timeout`` s per daemon); a failed start stops what it started."""
        self._check_can_start()
        for sub in ("state", "log", "munge", *(f"spool/{n}" for n in self.nodes)):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o700)  # munged refuses a key in a directory others can read
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True)
        self._write_conf()
        try:
            self._start_daemons(key, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Cancels every job (their processes end within ``KillWait``), then stops the daemons."""
        if any(p.poll() is None for p in self._procs):
            self._run("scancel", "--user", getpass.getuser(), "--full")
            self._wait(lambda: not self._run("squeue", "-h").stdout.strip(), 30, None)
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- jobs --------------------------------------------------------------------------------------------

    def sbatch(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> int:
        """``sbatch --parsable ARGS`` from ``cwd`` with ``env`` (the whole environment the job sees, plus
        ``SLURM_CONF``); returns the job id."""
        out = self._run("sbatch", "--parsable", *args, cwd=cwd, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"sbatch {' '.join(args)} failed: {out.stderr.strip()}")
        return int(out.stdout.strip().split(";")[0])

    def job(self, job_id: int | str) -> dict[str, str]:
        """``scontrol show job``'s fields (``JobState``, ``Restarts``, ``NodeList``...); empty once gone."""
        out = self._run("scontrol", "show", "job", "--oneliner", str(job_id))
        return dict(re.findall(r"(\w+)=(\S*)", out.stdout)) if out.returncode == 0 else {}

    def wait_for(self, job_id: int | str, predicate, *, timeout: float, what: str) -> dict[str, str]:
        """Polls the job until ``predicate(fields)`` holds; fails, with its fields, after ``timeout`` s."""
        fields: dict[str, str] = {}

        def check() -> bool:
            nonlocal fields
            fields = self.job(job_id)
            return bool(fields) and predicate(fields)

        self._wait(check, timeout, f"job {job_id} never {what}: {fields}")
        return fields

    def elapsed(self, job_id: int | str) -> int:
        """Seconds the job has run (``RunTime``, ``[days-]hh:mm:ss``)."""
        days, _, clock = self.job(job_id)["RunTime"].rpartition("-")
        hours, minutes, seconds = map(int, clock.split(":"))
        return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds

    def scancel(self, *args: str) -> None:
        self._check("scancel", *args)

    def scontrol(self, *args: str) -> str:
        return self._check("scontrol", *args)

    # --- internals -----------------------------------------------------------------------------------------

    def _check_can_start(self) -> None:
        missing = missing_binaries()
        if missing:
            raise RuntimeError(
                f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
            )
        try:
            socket.gethostbyname(self.nodes[0])
        except OSError:
            raise RuntimeError(
                f"this host's name {self.nodes[0]!r} does not resolve, so a job's ranks cannot reach their "
                "MASTER_ADDR (the first node): add it to /etc/hosts"
            ) from None
        pid = self.root / "slurmctld.pid"
        if pid.exists() and Path(f"/proc/{pid.read_text().strip()}").exists():
            raise RuntimeError(
                f"a SLURM cluster already runs from {self.root} (slurmctld pid {pid.read_text().strip()})"
            )

    def _start_daemons(self, key: Path, timeout: float) -> None:
        munge = self.root / "munge"
        socket_path = munge / "munge.socket"
        daemon = [_which("munged"), "--foreground", "--force", f"--socket={socket_path}", f"--key-file={key}"]
        files = [
            f"--pid-file={munge / 'pid'}",
            f"--seed-file={munge / 'seed'}",
            f"--log-file={munge / 'log'}",
        ]
        self._spawn([*daemon, *files], "munged")
        self._wait(socket_path.exists, timeout, "munged did not create its socket")
        self._spawn([_which("slurmctld"), "-D", "-i", "-f", str(self.conf)], "slurmctld")
        self._wait(lambda: self._run("scontrol", "ping").returncode == 0, timeout, "slurmctld did not answer")
        for node in self.nodes:
            self._spawn([_which("slurmd"), "-D", "-N", node, "-f", str(self.conf)], f"slurmd-{node}")
        self._wait(self._all_idle, timeout, "the nodes did not become idle")

    def _write_conf(self) -> None:
        ctld_port, *node_ports = _free_ports(1 + len(self.nodes))
        user = getpass.getuser()
        lines = [
            "ClusterName=olmo2test",
            f"SlurmctldHost={socket.gethostname()}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            # cred_expire: also how long a requeued job waits before it starts again (default 120 s)
            f"AuthInfo=socket={self.root / 'munge' / 'munge.socket'},cred_expire=10",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}/%n",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'spool'}/%n/slurmd.pid",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log'}/slurmd-%n.log",
            "SlurmdParameters=config_overrides",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/builtin",
            "SchedulerParameters=sched_interval=1",
            "JobRequeue=1",
            "KillWait=3",
            "MinJobAge=600",  # scontrol keeps a finished job's state this long (no accounting database)
            "ReturnToService=2",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "Waittime=0",
        ]
        host = socket.gethostname()
        for node, port in zip(self.nodes, node_ports):
            lines.append(
                f"NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} CPUs={self.cpus}"
            )
        nodes = ",".join(self.nodes)
        lines.append(f"PartitionName=debug Nodes={nodes} Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")

    def _spawn(self, cmd: list[str], name: str) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        self._procs.append(
            subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def _check(self, name: str, *args: str) -> str:
        out = self._run(name, *args)
        if out.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def _run(self, name: str, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
        environ = {**(os.environ if env is None else env), **self.env}
        return subprocess.run([_which(name), *args], cwd=cwd, env=environ, capture_output=True, text=True)

    def _all_idle(self) -> bool:
        out = self._run("sinfo", "--noheader", "--Node", "--format=%N %t").stdout.split()
        states = dict(zip(out[::2], out[1::2]))
        return all(states.get(node) == "idle" for node in self.nodes)

    def _wait(self, predicate, timeout: float, message: str | None) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            dead = [p.args[0] for p in self._procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                if message is None:
                    return
                logs = "\n".join(
                    f"{f.name}: {f.read_text()[-1500:]}" for f in sorted((self.root / "log").glob("*"))
                )
                raise RuntimeError(f"{message} (exited: {dead}); logs in {self.root / 'log'}:\n{logs}")
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, required=True, help="scratch directory (config, state, logs)")
    parser.add_argument("--nodes", type=int, default=1, help="nodes, each a slurmd on this host")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs per node")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops the cluster as Ctrl+C does
    with SlurmCluster(args.dir, nodes=args.nodes, cpus=args.cpus) as cluster:
        print(f"SLURM is up: export SLURM_CONF={cluster.conf}   (Ctrl+C stops it)", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
