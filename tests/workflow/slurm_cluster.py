"""A throw-away single-node SLURM cluster on localhost, for tests of the SLURM profile.

Debian's ``slurm-wlm`` and ``munge`` packages (``.ci/run`` installs them) provide the daemons. The cluster gets a
private munged (own key, socket and pid file) and slurmctld + slurmd whose state, spool, logs and pid files all
live in one scratch folder; only ``/etc/slurm/slurm.conf`` is outside it, because the jobstep of
snakemake-executor-plugin-slurm strips ``SLURM_CONF`` from the environment (docs: environment notes). That file
carries a marker line, so a config left by a killed run is recognised (and its daemons stopped) and a real
cluster's config is never overwritten. Without slurmdbd, status queries must use ``squeue``, which needs
``MinJobAge`` well above the executor's first status check.

``LocalSlurm.start()`` raises :class:`SlurmUnavailable` with a message that says what to do; tests turn it
into a failure (never a skip). ``stop()`` cancels the cluster's jobs and ends the daemons it started, by pid.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
GRES_CONF = SLURM_CONF.parent / "gres.conf"  # only with gpus > 0
MARKER = "# written by gliofuse tests/workflow/slurm_cluster.py"
LOCK = Path(tempfile.gettempdir()) / "gliofuse-slurm-test.lock"
APT_LINE = "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge"
BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")
PARTITION = "debug"


class SlurmUnavailable(RuntimeError):
    """The local SLURM cluster cannot be started; the message says why and what to do."""


def _run(*cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), check=False, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise SlurmUnavailable(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return proc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _terminate(*pids: int | None, timeout: float = 10.0) -> None:
    """SIGTERM to each process (by id), then SIGKILL to those still alive after ``timeout`` s."""
    live = []
    for pid in pids:
        if pid and _alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
                live.append(pid)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        live = [pid for pid in live if _alive(pid)]
        time.sleep(0.05)
    for pid in live:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _pid_files_of(conf_text: str) -> list[Path]:
    keys = ("SlurmctldPidFile", "SlurmdPidFile")
    out = []
    for line in conf_text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in keys and value.strip():
            out.append(Path(value.strip()))
    # the private munged's pid file sits next to its socket (AuthInfo=socket=<dir>/munge.socket)
    for line in conf_text.splitlines():
        if line.startswith("AuthInfo=socket="):
            out.append(Path(line.split("=", 2)[2]).parent / "munged.pid")
    return out


def check_prerequisites() -> None:
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if missing:
        raise SlurmUnavailable(
            f"SLURM/munge binaries not found: {', '.join(missing)}. The SLURM test starts a real single-node "
            f"SLURM on localhost; install it as CI does (the apt line in .ci/run):\n    {APT_LINE}\n"
            "then rerun `make test` (as root: the daemons and /etc/slurm/slurm.conf need it)."
        )
    if os.geteuid() != 0:
        raise SlurmUnavailable(
            "the SLURM test must run as root (it starts slurmctld/slurmd and writes /etc/slurm/slurm.conf, which "
            "the executor's jobstep requires). Run the suite as CI does: `.ci/run` as root."
        )


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class LocalSlurm:
    """Single-node SLURM on localhost (one partition ``debug``, no accounting, no cgroups).

    ``gpus`` > 0 declares that many *fake* GPUs (GRES backed by empty files, AutoDetect=off): enough for SLURM to
    schedule ``--gpus``/``--cpus-per-gpu`` requests; the jobs get no device.
    """

    def __init__(self, cpus: int | None = None, real_memory_mb: int | None = None, min_job_age_s: int = 600,
                 gpus: int = 0):
        self.cpus = cpus or os.cpu_count() or 1
        self.gpus = gpus
        if real_memory_mb is None:
            real_memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
        self.real_memory_mb = real_memory_mb
        self.min_job_age_s = min_job_age_s
        self.root: Path | None = None
        self._lock_fd: int | None = None
        self._pids: dict[str, int] = {}

    # ----------------------------------------------------------------------------------------------- setup
    def _acquire_lock(self, timeout: float) -> None:
        """One local cluster per machine (fixed ports and /etc/slurm/slurm.conf): wait for other test runs."""
        self._lock_fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SlurmUnavailable(f"another test run holds {LOCK} (a local SLURM is in use) for {timeout:.0f} s")
                time.sleep(1)

    def _claim_conf(self) -> None:
        """Refuse a foreign /etc/slurm/slurm.conf; stop the daemons of a stale one of ours."""
        if GRES_CONF.exists() and MARKER not in GRES_CONF.read_text(errors="replace"):
            raise SlurmUnavailable(f"{GRES_CONF} exists and was not written by this test: refusing to replace it.")
        if not SLURM_CONF.exists():
            return
        text = SLURM_CONF.read_text(errors="replace")
        if MARKER not in text:
            raise SlurmUnavailable(
                f"{SLURM_CONF} exists and was not written by this test: refusing to replace a real cluster's "
                "config. Run the SLURM test on a machine without a SLURM installation (e.g. CI)."
            )
        _terminate(*(_read_pid(pid_file) for pid_file in _pid_files_of(text)))
        for line in text.splitlines():  # the stale run's scratch folder
            if line.startswith("StateSaveLocation="):
                stale = Path(line.split("=", 1)[1]).parent
                if stale.name.startswith("gliofuse-slurm-"):
                    shutil.rmtree(stale, ignore_errors=True)

    def _conf_text(self) -> str:
        r = self.root
        assert r is not None
        return "\n".join([
            MARKER,
            "ClusterName=gliofuse-test",
            "SlurmctldHost=localhost",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"AuthInfo=socket={r / 'munge' / 'munge.socket'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "SchedulerType=sched/backfill",
            *(["GresTypes=gpu"] if self.gpus else []),
            "ReturnToService=2",
            # squeue-based status checks see finished jobs only for MinJobAge seconds
            f"MinJobAge={self.min_job_age_s}",
            "KillWait=5",
            "InactiveLimit=0",
            "MpiDefault=none",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.real_memory_mb}"
            + (f" Gres=gpu:{self.gpus}" if self.gpus else "") + " State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
            "",
        ])

    def _start_munge(self) -> None:
        r = self.root
        assert r is not None
        mdir = r / "munge"
        mdir.mkdir(mode=0o700)
        key = mdir / "munge.key"
        _run(_binary("mungekey"), "--create", f"--keyfile={key}", timeout=30)
        key.chmod(0o400)
        _run(_binary("munged"), "--force", f"--socket={mdir / 'munge.socket'}", f"--key-file={key}",
             f"--pid-file={mdir / 'munged.pid'}", f"--log-file={mdir / 'munged.log'}",
             f"--seed-file={mdir / 'munged.seed'}", timeout=30)
        self._wait_for(lambda: (mdir / "munged.pid").exists() and (mdir / "munge.socket").exists(), 15,
                       "munged did not start", mdir / "munged.log")
        self._pids["munged"] = _read_pid(mdir / "munged.pid") or 0

    def start(self, lock_timeout: float = 600, ready_timeout: float = 60) -> LocalSlurm:
        check_prerequisites()
        self._acquire_lock(lock_timeout)
        try:
            self._claim_conf()
            self.root = Path(tempfile.mkdtemp(prefix="gliofuse-slurm-"))
            for sub in ("state", "spool", "log"):
                (self.root / sub).mkdir()
            SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
            SLURM_CONF.write_text(self._conf_text())
            if not self.gpus and GRES_CONF.exists():
                GRES_CONF.unlink()  # ours (checked above), from a killed run
            if self.gpus:
                dev = self.root / "dev"
                dev.mkdir()
                for i in range(self.gpus):
                    (dev / f"fakegpu{i}").touch()
                GRES_CONF.write_text(f"{MARKER}\nAutoDetect=off\n"
                                     f"NodeName=localhost Name=gpu File={dev}/fakegpu[0-{self.gpus - 1}]\n")
            self._start_munge()
            _run(_binary("slurmctld"), "-c", timeout=60)  # -c: no saved state
            self._wait_for(lambda: (self.root / "slurmctld.pid").exists(), 30, "slurmctld did not start",
                           self.root / "log" / "slurmctld.log")
            self._pids["slurmctld"] = _read_pid(self.root / "slurmctld.pid") or 0
            _run(_binary("slurmd"), "-N", "localhost", timeout=60)
            self._wait_for(lambda: (self.root / "slurmd.pid").exists(), 30, "slurmd did not start",
                           self.root / "log" / "slurmd.log")
            self._pids["slurmd"] = _read_pid(self.root / "slurmd.pid") or 0
            self._wait_for(self._node_idle, ready_timeout, "the node did not become idle",
                           self.root / "log" / "slurmctld.log")
        except BaseException:
            self.stop()
            raise
        return self

    def _node_idle(self) -> bool:
        proc = _run("sinfo", "-h", "-N", "-o", "%T", timeout=10, check=False)
        return proc.returncode == 0 and proc.stdout.strip().rstrip("*") == "idle"

    def _wait_for(self, cond, timeout: float, what: str, log: Path | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.2)
        tail = ""
        if log is not None and log.exists():
            tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise SlurmUnavailable(f"{what} within {timeout:.0f} s{tail}")

    # --------------------------------------------------------------------------------------------- queries
    def job_ids(self) -> list[str]:
        """Ids of the jobs slurmctld still knows (finished ones for MinJobAge s), array tasks as <id>_<task>."""
        proc = _run("squeue", "-h", "--states=all", "-o", "%i", timeout=30, check=False)
        return proc.stdout.split() if proc.returncode == 0 else []

    def job_table(self) -> list[dict[str, str]]:
        """One row per job/array task: id, array parent id, name, comment and state (scontrol show job)."""
        proc = _run("scontrol", "show", "job", "--oneliner", timeout=30, check=False)
        rows = []
        for line in proc.stdout.splitlines():
            fields = {}
            for tok in line.split():
                k, _, v = tok.partition("=")
                fields.setdefault(k, v)
            if "JobId" in fields:
                rows.append(fields)
        return rows

    def log_tail(self, n: int = 40) -> str:
        if self.root is None:
            return ""
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            p = self.root / "log" / name
            if p.exists():
                parts.append(f"--- {name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-n:]))
        return "\n".join(parts)

    # -------------------------------------------------------------------------------------------- teardown
    def stop(self) -> None:
        """Cancel every job of this cluster, stop slurmd, slurmctld and munged (the pids it started)."""
        if self._pids.get("slurmctld"):
            try:
                proc = _run("squeue", "-h", "-o", "%A", "--states=PENDING,RUNNING,SUSPENDED,COMPLETING",
                            timeout=30, check=False)
                ids = sorted(set(proc.stdout.split()))
                if ids:
                    _run("scancel", *ids, timeout=30, check=False)
                    time.sleep(1)
            except (OSError, subprocess.SubprocessError) as exc:  # teardown goes on
                print(f"scancel failed: {exc}", file=sys.stderr)
        _terminate(self._pids.pop("slurmd", None), self._pids.pop("slurmctld", None))
        _terminate(self._pids.pop("munged", None))  # last: the SLURM daemons authenticate through it
        for conf in (SLURM_CONF, GRES_CONF):
            try:
                if conf.exists() and MARKER in conf.read_text(errors="replace"):
                    conf.unlink()
            except OSError:
                pass
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> LocalSlurm:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
