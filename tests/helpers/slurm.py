"""A real one-node SLURM for tests: munged, slurmctld and slurmd started in a temporary folder.

Debian packages SLURM (``slurmctld``, ``slurmd``, ``slurm-client``) and MUNGE;
``scripts/setup.sh`` installs them. :func:`one_node_slurm` writes a
``slurm.conf`` for this machine alone (its own ports, state, spool and MUNGE
socket under the folder, no cgroups, no accounting), starts the three daemons,
waits until the node is idle, and stops them at the end. ``SLURM_CONF`` is set
for the ``with`` block, so ``sbatch``, ``squeue`` and ``scancel`` (and
dask-jobqueue, which calls them) talk to this cluster.

When a daemon cannot run here (not installed, no permission, a port in use),
:class:`SlurmUnavailable` says which and why, with the end of its log.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo")


class SlurmUnavailable(RuntimeError):
    """SLURM cannot run on this machine (the message says why)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _find(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise SlurmUnavailable(
            f"{name} is not installed (apt-get install slurmctld slurmd slurm-client munge)"
        )
    return found


def _tail(path: Path, n: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _write_conf(folder: Path, host: str, munge_socket: Path) -> Path:
    cpus = os.cpu_count() or 1
    conf = folder / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=fbias-test",
                f"SlurmctldHost={host}(127.0.0.1)",
                f"SlurmUser={_user()}",
                f"SlurmdUser={_user()}",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={munge_socket}",
                f"StateSaveLocation={folder / 'state'}",
                f"SlurmdSpoolDir={folder / 'spool'}",
                f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
                f"SlurmdPidFile={folder / 'slurmd.pid'}",
                f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={folder / 'log' / 'slurmd.log'}",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_CPU",
                "ReturnToService=2",
                "SchedulerType=sched/backfill",
                "JobCompType=jobcomp/none",
                "AccountingStorageType=accounting_storage/none",
                "MpiDefault=none",
                "SlurmdTimeout=30",
                f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 State=UNKNOWN",
                "PartitionName=debug Nodes=ALL Default=YES MaxTime=60 State=UP",
                "",
            ]
        )
    )
    return conf


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def one_node_slurm(folder: Path, timeout: float = 30.0) -> Iterator[Path]:
    """Run a one-node SLURM under ``folder`` for the ``with`` block; yield its slurm.conf."""
    binaries = {name: _find(name) for name in (*DAEMONS, *CLIENTS)}
    host = socket.gethostname().split(".")[0]
    for sub in ("state", "spool", "munge", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    key = folder / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    munge_socket = folder / "munge" / "munge.socket"
    conf = _write_conf(folder, host, munge_socket)
    env = dict(os.environ, SLURM_CONF=str(conf))
    pids = {
        "munged": folder / "munge" / "munged.pid",
        "slurmctld": folder / "slurmctld.pid",
        "slurmd": folder / "slurmd.pid",
    }
    logs = {
        "munged": folder / "log" / "munged.log",
        "slurmctld": folder / "log" / "slurmctld.log",
        "slurmd": folder / "log" / "slurmd.log",
    }
    commands = {
        "munged": [
            binaries["munged"],
            *(["--force"] if os.getuid() == 0 else []),
            f"--key-file={key}",
            f"--socket={munge_socket}",
            f"--pid-file={pids['munged']}",
            f"--log-file={logs['munged']}",
            f"--seed-file={folder / 'munge' / 'seed'}",
        ],
        "slurmctld": [binaries["slurmctld"], "-f", str(conf)],
        "slurmd": [binaries["slurmd"], "-f", str(conf)],
    }
    old = os.environ.get("SLURM_CONF")
    try:
        for name in DAEMONS:
            proc = subprocess.run(commands[name], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SlurmUnavailable(
                    f"{name} did not start (exit {proc.returncode}): "
                    f"{(proc.stderr or proc.stdout).strip()[-500:]}\n{_tail(logs[name])}"
                )
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            out = subprocess.run(
                [binaries["sinfo"], "-h", "-o", "%T"], env=env, capture_output=True, text=True
            )
            state = out.stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            raise SlurmUnavailable(
                f"the SLURM node is not idle after {timeout:.0f} s (state {state!r}):\n"
                f"{_tail(logs['slurmctld'])}\n{_tail(logs['slurmd'])}"
            )
        os.environ["SLURM_CONF"] = str(conf)
        yield conf
    finally:
        subprocess.run(
            [binaries["scancel"], "--user", _user()], env=env, capture_output=True, check=False
        )
        for name in reversed(DAEMONS):
            pid = _pid(pids[name])
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
