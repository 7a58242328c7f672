"""A throw-away single-node SLURM cluster for tests.

This module is a test helper, not a test file.  ``SlurmCluster(workdir)`` is a
context manager that

* installs ``slurm-wlm`` and ``munge`` with apt-get when the daemons are
  missing (only possible as root on a Debian/Ubuntu system; otherwise
  :class:`SlurmUnavailable` is raised with an explanation),
* starts a private ``munged`` (own key, socket, pid and log file under
  ``workdir``),
* writes a ``slurm.conf`` for one node (CPUs and memory taken from
  ``slurmd -C``) and one default partition ``debug``, without cgroups and
  without an accounting database,
* starts ``slurmctld`` and ``slurmd`` on free ports of 127.0.0.1 and waits
  until the node is idle,
* exports ``SLURM_CONF`` (in ``os.environ`` while the cluster is up, and in
  :attr:`SlurmCluster.env` for subprocesses),
* on exit cancels all jobs, stops every daemon it started by PID and checks
  that no process belonging to the cluster is left.

:func:`run_snakemake` runs Snakemake in its own process group under a hard
time limit; a Snakemake waiting for cluster jobs ignores SIGTERM, so on
timeout the whole group is killed with SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

__all__ = [
    "SlurmCluster",
    "SlurmUnavailable",
    "SnakemakeResult",
    "SnakemakeRun",
    "ensure_slurm_installed",
    "run_snakemake",
]

SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "scontrol", "srun")
# Client programs that get a wrapper pinning SLURM_CONF (see _write_wrappers).
WRAPPED_CLIENTS = CLIENTS + ("salloc", "sacct", "sstat", "sattach", "sprio", "sshare")
APT_PACKAGES = ("slurm-wlm", "munge")


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or started on this machine."""


def _which(name: str, exclude: Iterable[os.PathLike | str] = ()) -> str | None:
    skip = {os.path.realpath(d) for d in exclude}
    dirs = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and os.path.realpath(d) not in skip
    ]
    dirs += [d for d in SBIN_DIRS if d not in dirs]
    return shutil.which(name, path=os.pathsep.join(dirs))


def _missing_programs() -> list[str]:
    return [p for p in DAEMONS + CLIENTS if _which(p) is None]


def ensure_slurm_installed(install: bool = True, timeout: float = 900) -> None:
    """Make sure the SLURM daemons, client tools and munge are present.

    Installs the Debian packages ``slurm-wlm`` and ``munge`` when something is
    missing and ``install`` is true.  Raises :class:`SlurmUnavailable` when
    the programs are missing and cannot be installed.
    """
    missing = _missing_programs()
    if not missing:
        return
    hint = (
        "install the packages by hand (Debian/Ubuntu: "
        "'apt-get install --no-install-recommends slurm-wlm munge') "
        "or deselect these tests with '-m \"not slurm\"'"
    )
    if not install:
        raise SlurmUnavailable(f"missing programs {missing}; {hint}")
    if os.geteuid() != 0:
        raise SlurmUnavailable(
            f"missing programs {missing} and not running as root, so they "
            f"cannot be installed automatically; {hint}"
        )
    apt_get = _which("apt-get")
    if apt_get is None:
        raise SlurmUnavailable(f"missing programs {missing} and no apt-get; {hint}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        [apt_get, "update", "-qq"],
        [apt_get, "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES],
    ):
        try:
            proc = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as err:
            raise SlurmUnavailable(f"'{' '.join(cmd)}' timed out; {hint}") from err
        if proc.returncode != 0:
            raise SlurmUnavailable(
                f"'{' '.join(cmd)}' failed with exit code {proc.returncode}:\n"
                f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}\n{hint}"
            )
    missing = _missing_programs()
    if missing:
        raise SlurmUnavailable(f"still missing {missing} after apt-get install; {hint}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _parent_death_signal() -> None:
    """Run in the daemon child before exec: die with SIGTERM if the test
    process dies, so a crashed test run does not leave daemons behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except Exception:  # pragma: no cover - best effort only
        pass


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    # A zombie has exited; its parent only has to reap it.
    state = stat.rsplit(b")", 1)[-1].split()[0]
    return state not in (b"Z", b"X")


def _ancestors() -> set[int]:
    pids = set()
    pid = os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                pid = int(fh.read().rsplit(b")", 1)[-1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def parse_slurmd_c(text: str) -> dict[str, str]:
    """Parse the first line of ``slurmd -C`` (``Key=Value`` pairs)."""
    first = text.strip().splitlines()[0]
    return dict(item.split("=", 1) for item in first.split() if "=" in item)


class SlurmCluster:
    """A single-node SLURM cluster living in ``workdir``.

    Use as a context manager::

        with SlurmCluster(tmp_path / "slurm") as cluster:
            subprocess.run(["sbatch", "--wrap", "true"], env=cluster.env)

    Attributes available after start: ``conf`` (path of slurm.conf), ``env``
    (environment for child processes), ``version`` (output of
    ``sinfo --version``), ``node_name``, ``cpus``, ``real_memory_mb``,
    ``partition``.
    """

    partition = "debug"

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        cluster_name: str = "momentumct",
        min_job_age: int = 300,
        install: bool = True,
        startup_timeout: float = 60.0,
        memory_fraction: float = 0.95,
        cpus: int | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.cluster_name = cluster_name
        # squeue only shows finished jobs for MinJobAge seconds; the Snakemake
        # SLURM plugin wants at least three times its initial status delay.
        self.min_job_age = min_job_age
        self.install = install
        self.startup_timeout = startup_timeout
        self.memory_fraction = memory_fraction
        # More CPUs than the machine has: jobs that mostly wait (on a status check, a time limit, a
        # Snakemake starting up) run side by side instead of queueing for the few real cores.
        self.oversubscribe = cpus
        self.conf = self.workdir / "etc" / "slurm.conf"
        self.env: dict[str, str] = {}
        self.version: str | None = None
        self.node_name: str | None = None
        self.cpus: int | None = None
        self.real_memory_mb: int | None = None
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: list = []
        self._saved_env: dict[str, str | None] = {}
        self._env_exported = False
        self.munge_socket: Path | None = None

    # ------------------------------------------------------------------ paths
    @property
    def log_dir(self) -> Path:
        return self.workdir / "log"

    @property
    def bin_dir(self) -> Path:
        """Directory with client wrappers; first on PATH in :attr:`env`."""
        return self.workdir / "bin"

    def _path(self, *parts: str) -> Path:
        return self.workdir.joinpath(*parts)

    # ------------------------------------------------------------- lifecycle
    def __enter__(self) -> "SlurmCluster":
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        leftovers = self.stop()
        if leftovers and exc_type is None:
            raise RuntimeError(f"processes left running after stop: {leftovers}")

    def start(self) -> "SlurmCluster":
        ensure_slurm_installed(self.install)
        info = parse_slurmd_c(
            subprocess.run(
                [_which("slurmd"), "-C"], capture_output=True, text=True, timeout=30
            ).stdout
        )
        # slurmstepd creates unix sockets named <spool>/<node>_<job>.<step>
        # (munged one below workdir too); such paths are limited to 107 bytes.
        longest = len(f"{self.workdir}/spool/{info['NodeName']}_1234567.4294967291")
        if longest > 107:
            raise ValueError(
                f"workdir path too long for the unix sockets below it: "
                f"{self.workdir} (use a shorter one, e.g. pytest --basetemp)"
            )
        if os.geteuid() != 0:
            raise SlurmUnavailable("the test cluster runs slurmd as root; run as root")
        for sub in ("bin", "etc", "log", "run", "state", "spool", "munge"):
            self._path(sub).mkdir(parents=True, exist_ok=True)
        try:
            self._start_munge()
            self._write_conf(info)
            self._write_wrappers()
            self.env = dict(
                os.environ,
                SLURM_CONF=str(self.conf),
                PATH=os.pathsep.join([str(self.bin_dir), os.environ.get("PATH", "")]),
            )
            self._start_daemon(
                "slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)]
            )
            self._start_daemon(
                "slurmd",
                [_which("slurmd"), "-D", "-N", self.node_name, "-f", str(self.conf)],
            )
            self._wait_for_idle_node()
            self.version = self._run(["sinfo", "--version"]).stdout.strip()
            (self.workdir / "VERSION").write_text(self.version + "\n")
            self._saved_env = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
            os.environ["SLURM_CONF"] = self.env["SLURM_CONF"]
            os.environ["PATH"] = self.env["PATH"]
            self._env_exported = True
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> list[str]:
        """Cancel all jobs, stop the daemons (by PID) and return a
        description of any process of this cluster that is still alive."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            self._cancel_all_jobs()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.get(name)
            if proc is not None:
                self._terminate(proc)
        for name in ("slurmd", "slurmctld", "munged"):
            self._kill_pidfile(name)
        self._kill_stray_processes()
        for fh in self._logs:
            fh.close()
        self._logs.clear()
        self._procs.clear()
        if self._env_exported:
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._env_exported = False
        return self.leftover_processes()

    # --------------------------------------------------------------- helpers
    def _run(self, cmd: Sequence[str], timeout: float = 30, check: bool = True):
        proc = subprocess.run(
            list(cmd),
            env=self.env or dict(os.environ, SLURM_CONF=str(self.conf)),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def _start_daemon(self, name: str, cmd: Sequence[str]) -> subprocess.Popen:
        out = open(self.log_dir / f"{name}.out", "ab")
        self._logs.append(out)
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env or dict(os.environ),
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=_parent_death_signal,
        )
        self._procs[name] = proc
        time.sleep(0.3)
        if proc.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {proc.returncode} right after start:\n"
                + self._tail(self.log_dir / f"{name}.out")
                + self._tail(self.log_dir / f"{name}.log")
            )
        return proc

    def _start_munge(self) -> None:
        munge_dir = self._path("munge")
        munge_dir.chmod(0o711)
        key = munge_dir / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        socket_path = munge_dir / "munge.socket"
        self.munge_socket = socket_path
        self._start_daemon(
            "munged",
            [
                _which("munged"),
                "--foreground",
                # The directories above a pytest tmp dir are private to root;
                # --force turns munged's "socket not reachable for all users"
                # check into a warning (all clients here run as root).
                "--force",
                f"--socket={socket_path}",
                f"--key-file={key}",
                f"--pid-file={self._path('run', 'munged.pid')}",
                f"--log-file={self._path('log', 'munged.log')}",
                f"--seed-file={munge_dir / 'munged.seed'}",
            ],
        )
        deadline = time.monotonic() + 20
        while not socket_path.exists():
            if time.monotonic() > deadline or self._procs["munged"].poll() is not None:
                raise RuntimeError(
                    "munged did not come up:\n"
                    + self._tail(self._path("log", "munged.log"))
                    + self._tail(self.log_dir / "munged.out")
                )
            time.sleep(0.1)

    def _write_conf(self, info: Mapping[str, str]) -> None:
        """Write slurm.conf for this node; ``info`` is parsed ``slurmd -C``."""
        self.node_name = info["NodeName"]
        self.cpus = int(info["CPUs"])
        topology = " ".join(
            f"{k}={info[k]}"
            for k in ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
            if k in info
        )
        overrides = []
        if self.oversubscribe and self.oversubscribe > self.cpus:
            self.cpus = self.oversubscribe
            topology = f"Boards=1 SocketsPerBoard=1 CoresPerSocket={self.cpus} ThreadsPerCore=1"
            # Take the node as configured instead of draining it for lacking the CPUs it claims.
            overrides = ["SlurmdParameters=config_overrides"]
        reported = int(info["RealMemory"])
        # A node whose configured memory exceeds what slurmd sees gets drained.
        self.real_memory_mb = max(256, int(reported * self.memory_fraction))
        ctld_port, slurmd_port = _free_port(), _free_port()
        while slurmd_port == ctld_port:
            slurmd_port = _free_port()
        p = self._path
        lines = [
            f"ClusterName={self.cluster_name}",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "MpiDefault=none",
            # No cgroups in containers: track processes through /proc.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            # Cores and memory are consumable, so --mem is a hard request.
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            # Without cgroups, memory is enforced by the accounting gatherer:
            # it samples every step each second and kills a step whose RSS
            # exceeds its allocation.
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=task=1",
            "JobAcctGatherParams=OverMemoryKill",
            # No slurmdbd: sacct does not work, status checks must use squeue.
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            f"MinJobAge={self.min_job_age}",
            "ReturnToService=2",
            "KillWait=2",
            "InactiveLimit=0",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            "MessageTimeout=20",
            "SchedulerType=sched/backfill",
            "MailProg=/bin/true",
            f"StateSaveLocation={p('state')}",
            f"SlurmdSpoolDir={p('spool')}",
            f"SlurmctldPidFile={p('run', 'slurmctld.pid')}",
            f"SlurmdPidFile={p('run', 'slurmd.pid')}",
            f"SlurmctldLogFile={p('log', 'slurmctld.log')}",
            f"SlurmdLogFile={p('log', 'slurmd.log')}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            *overrides,
            f"NodeName={self.node_name} NodeAddr=127.0.0.1 NodeHostname={self.node_name}"
            f" CPUs={self.cpus} {topology} RealMemory={self.real_memory_mb}"
            " State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.node_name} Default=YES"
            " MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")

    def _write_wrappers(self) -> None:
        """Put wrappers for the client programs into :attr:`bin_dir`.

        The Snakemake SLURM plugin's job step executor removes every
        ``SLURM_*`` variable, SLURM_CONF included, from the environment of the
        ``srun`` it starts inside the job.  On a real cluster srun then finds
        /etc/slurm/slurm.conf (or the configless cache of slurmd); this cluster
        must not touch system paths, so the wrappers pin its slurm.conf.
        """
        for name in WRAPPED_CLIENTS:
            target = _which(name, exclude=[self.bin_dir])
            if target is None:
                continue
            wrapper = self.bin_dir / name
            wrapper.write_text(
                "#!/bin/sh\n"
                f"SLURM_CONF={shlex.quote(str(self.conf))}\n"
                "export SLURM_CONF\n"
                f'exec {shlex.quote(target)} "$@"\n'
            )
            wrapper.chmod(0o755)

    def _wait_for_idle_node(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        state = ""
        while time.monotonic() < deadline:
            for name in ("slurmctld", "slurmd"):
                if self._procs[name].poll() is not None:
                    raise RuntimeError(
                        f"{name} died during startup:\n"
                        + self._tail(self.log_dir / f"{name}.log")
                        + self._tail(self.log_dir / f"{name}.out")
                    )
            proc = self._run(["sinfo", "-h", "-N", "-o", "%N %t"], check=False)
            if proc.returncode == 0:
                state = proc.stdout.strip()
                if re.fullmatch(rf"{re.escape(self.node_name)} idle", state):
                    return
            time.sleep(0.5)
        reason = self._run(["sinfo", "-R"], check=False).stdout
        raise RuntimeError(
            f"node not idle after {self.startup_timeout}s (state {state!r}, {reason})\n"
            + self._tail(self.log_dir / "slurmctld.log")
            + self._tail(self.log_dir / "slurmd.log")
        )

    def job_ids(self, states: str = "all") -> list[str]:
        proc = self._run(
            ["squeue", "-h", "-o", "%i", f"--states={states}"], check=False
        )
        return proc.stdout.split() if proc.returncode == 0 else []

    def job_table(self, states: str = "all") -> list[dict[str, str]]:
        """Jobs slurmctld still knows, as dicts with ``id``, ``state``,
        ``workdir``, ``comment`` (the Snakemake SLURM plugin puts the rule or
        group name there), ``account`` and ``partition``."""
        keys = ("id", "state", "workdir", "comment", "account", "partition")
        proc = self._run(
            ["squeue", "-h", f"--states={states}", "-o", "%i|%T|%Z|%k|%a|%P"],
            check=False,
        )
        if proc.returncode != 0:
            return []
        return [dict(zip(keys, line.split("|"))) for line in proc.stdout.splitlines()]

    def job_states(self) -> dict[str, str]:
        """``{job id: state}`` for all jobs slurmctld still knows."""
        proc = self._run(["squeue", "-h", "-o", "%i|%T", "--states=all"])
        return dict(line.split("|", 1) for line in proc.stdout.split())

    def _cancel_all_jobs(self, timeout: float = 30) -> None:
        active = "PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING,REQUEUED,RESIZING"
        ids = self.job_ids(active)
        if ids:
            self._run(["scancel", *ids], check=False)
        deadline = time.monotonic() + timeout
        while ids and time.monotonic() < deadline:
            time.sleep(0.5)
            ids = self.job_ids(active)

    @staticmethod
    def _terminate(proc: subprocess.Popen, timeout: float = 15) -> None:
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def _kill_pidfile(self, name: str) -> None:
        pidfile = self._path("run", f"{name}.pid")
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if pid in _ancestors() or not _pid_alive(pid):
            return
        if self._belongs_to_cluster(pid):
            os.kill(pid, signal.SIGKILL)

    def _belongs_to_cluster(self, pid: int) -> bool:
        marker_conf = f"SLURM_CONF={self.conf}".encode()
        marker_dir = str(self.workdir).encode()
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if marker_conf in fh.read().split(b"\0"):
                    return True
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                return marker_dir in fh.read()
        except OSError:
            return False

    def _cluster_pids(self) -> list[int]:
        own = _ancestors()
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                pid = int(entry)
                if pid not in own and _pid_alive(pid) and self._belongs_to_cluster(pid):
                    pids.append(pid)
        return pids

    def _kill_stray_processes(self, timeout: float = 10) -> None:
        """SIGKILL leftovers of this cluster (job steps, slurmstepd, jobs'
        children, a Snakemake left behind by a test), found by PID through
        their SLURM_CONF or command line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self._cluster_pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.3)

    def leftover_processes(self) -> list[str]:
        """Processes of this cluster still alive (should be empty after stop)."""
        out = []
        for pid in self._cluster_pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            out.append(f"{pid} {cmd.strip()}")
        for name, proc in self._procs.items():
            if proc.poll() is None:
                out.append(f"{proc.pid} {name}")
        return out

    @staticmethod
    def _tail(path: Path, n: int = 30) -> str:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"--- {path.name} ---\n" + "\n".join(lines[-n:]) + "\n"

    def logs(self) -> str:
        """Tail of all daemon logs, for failure messages."""
        return "".join(
            self._tail(self.log_dir / name)
            for name in ("slurmctld.log", "slurmd.log", "munged.log")
        )

    # ----------------------------------------------------------- conveniences
    def sbatch(self, *args: str) -> str:
        """Submit a job, return its id."""
        proc = self._run(["sbatch", "--parsable", *args])
        return proc.stdout.strip().split(";")[0]

    def scancel(self, *job_ids: str) -> None:
        self._run(["scancel", *job_ids])

    def wait_for_job(self, job_id: str, timeout: float = 60) -> str:
        """Wait until the job reached a final state and return that state."""
        final = {
            "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY",
            "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED",
        }  # fmt: skip
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.job_states().get(job_id)
            if state in final:
                return state
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} still {state} after {timeout}s")


@dataclass
class SnakemakeResult:
    returncode: int | None
    output: str
    timed_out: bool
    seconds: float


class SnakemakeRun:
    """``python -m snakemake ARGS`` started in its own session (process
    group), so that the whole tree can be killed with SIGKILL: a Snakemake
    waiting for cluster jobs ignores SIGTERM."""

    def __init__(
        self,
        args: Iterable[str],
        *,
        cwd: str | os.PathLike,
        env: Mapping[str, str] | None = None,
        python: str | None = None,
        log: str | os.PathLike | None = None,
    ) -> None:
        """``log``: write the output to this file instead of a pipe.  Use it
        for runs that go on while the test does other things: nobody reads a
        pipe then, and a full pipe would stall Snakemake."""
        self.cmd = [python or sys.executable, "-m", "snakemake", *map(str, args)]
        self.start_time = time.monotonic()
        self.log = Path(log) if log is not None else None
        out = open(self.log, "w") if self.log is not None else subprocess.PIPE
        try:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        finally:
            if self.log is not None:
                out.close()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> SnakemakeResult:
        """Wait at most ``timeout`` seconds, then kill the process group."""
        timed_out = False
        try:
            output, _ = self.proc.communicate(timeout=max(timeout, 0))
        except subprocess.TimeoutExpired:
            timed_out = True
            self.kill()
            output, _ = self.proc.communicate()
        except BaseException:
            self.kill()
            self.proc.wait()
            raise
        if self.log is not None:
            output = self.log.read_text(errors="replace")
        return SnakemakeResult(
            returncode=None if timed_out else self.proc.returncode,
            output=output or "",
            timed_out=timed_out,
            seconds=time.monotonic() - self.start_time,
        )

    def __enter__(self) -> "SnakemakeRun":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.kill()
            self.proc.wait()


def run_snakemake(
    args: Iterable[str],
    *,
    cwd: str | os.PathLike,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    python: str | None = None,
) -> SnakemakeResult:
    """Run Snakemake to completion under a hard time limit (see
    :class:`SnakemakeRun`)."""
    return SnakemakeRun(args, cwd=cwd, env=env, python=python).wait(timeout)
