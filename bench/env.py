"""Getting the machine ready for a bench run: peers, tracefs, the C generator, matplotlib.

The bench installs what it needs itself because a fresh machine has none of it
and a reproducible figure must not depend on what someone installed by hand.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent

# binary -> Debian package; bpftool is only an aid (program listing for the
# in-kernel figure when a tracer keeps no prog fd), never a peer under test.
PACKAGES = {
    "bpftrace": "bpftrace",
    "/usr/sbin/opensnoop": "libbpf-tools",
    "bpftool": "bpftool",
}


def which(binary: str) -> Optional[str]:
    if binary.startswith("/"):
        return binary if os.access(binary, os.X_OK) else None
    return shutil.which(binary) or (
        f"/usr/sbin/{binary}" if os.access(f"/usr/sbin/{binary}", os.X_OK) else None
    )


class Installer:
    """apt-get with one `update` per run, and failures reported instead of raised."""

    def __init__(self, allowed: bool, log) -> None:
        self.allowed = allowed
        self.updated = False
        self.log = log

    def ensure(self, binary: str) -> tuple[Optional[str], Optional[str]]:
        """(path, None) when the binary is there or was installed; (None, why) otherwise."""
        found = which(binary)
        if found:
            return found, None
        package = PACKAGES.get(binary)
        if package is None:
            return None, f"{binary} not found"
        if not self.allowed:
            return None, f"{binary} missing and --no-install given (Debian package {package})"
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return None, f"{binary} missing; install Debian package {package} (needs root and apt-get)"
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if not self.updated:
            self.log(f"apt-get update (to install {package})")
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
            self.updated = True
        self.log(f"apt-get install {package}")
        result = subprocess.run(
            ["apt-get", "install", "-y", "-qq", package], env=env, capture_output=True, text=True, timeout=900
        )
        found = which(binary)
        if found:
            return found, None
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
        return None, f"Debian package {package} could not be installed: {tail[0]}"


def package_version(package: str) -> Optional[str]:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def ensure_tracefs() -> Optional[str]:
    """Mount tracefs if nothing has: bpftrace resolves tracepoints through it.

    It is left mounted afterwards, as a distribution would have it; the note says so.
    """
    if os.path.isdir("/sys/kernel/tracing/events"):
        return None
    if os.path.isdir("/sys/kernel/debug/tracing/events"):
        return None
    result = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], capture_output=True, text=True
    )
    if result.returncode == 0:
        return "tracefs was not mounted; the bench mounted it at /sys/kernel/tracing (left mounted)"
    return f"tracefs not mounted and mounting failed: {result.stderr.strip()}"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "openat-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def compile_loadgen() -> Path:
    """Build bench/loadgen.c with this machine's gcc, cached by source and compiler version."""
    source = BENCH / "loadgen.c"
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeError("no gcc/cc on this machine: install Debian package gcc")
    version = subprocess.run([gcc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    key = hashlib.sha256(source.read_bytes() + version.encode()).hexdigest()[:12]
    binary = cache_dir() / f"loadgen-{key}"
    if not binary.exists():
        tmp = binary.with_suffix(".tmp")
        subprocess.run([gcc, "-O2", "-Wall", "-o", str(tmp), str(source)], check=True)
        tmp.replace(binary)  # atomic: a concurrent run never sees half a binary
    return binary


def ensure_matplotlib(allowed: bool, log) -> tuple[bool, Optional[str]]:
    try:
        import matplotlib  # noqa: F401

        return True, None
    except ImportError:
        pass
    if not allowed:
        return False, "matplotlib missing and --no-install given: no chart"
    log("pip install matplotlib (bench-only extra)")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "matplotlib"], capture_output=True, text=True, timeout=900
    )
    try:
        import importlib

        importlib.invalidate_caches()
        import matplotlib  # noqa: F401,F811

        return True, None
    except ImportError:
        tail = (result.stderr or "").strip().splitlines()[-1:] or [""]
        return False, f"matplotlib could not be installed ({tail[0]}): no chart"


def machine_info() -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    gcc = shutil.which("gcc")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "kernel": platform.release(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "gcc": subprocess.run([gcc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        if gcc
        else None,
        "loadavg_at_start": os.getloadavg(),
    }


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])  # guest time is already inside user/nice


def cpu_busy(interval: float = 1.0) -> float:
    """Fraction of the whole machine's CPU time spent busy over ``interval`` seconds."""
    import time

    idle0, total0 = _cpu_times()
    time.sleep(interval)
    idle1, total1 = _cpu_times()
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def git_head() -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
