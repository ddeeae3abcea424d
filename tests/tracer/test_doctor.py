"""`openat doctor` on this machine, and --dump without privileges."""

import os
import subprocess
import sys

import pytest

from openat.tracer.doctor import attach_support

from ..support import need_root


def test_doctor_reports_this_kernel():
    need_root()
    result = subprocess.run([sys.executable, "-m", "openat", "doctor"], capture_output=True, text=True, timeout=120)
    lines = {line.split()[1] if line.split()[1] != "attach" else " ".join(line.split()[1:3]): line
             for line in result.stdout.splitlines() if line[:4].strip() in ("OK", "WARN", "FAIL")}
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines["ring"].startswith("OK")
    assert lines["attach tracepoint"].startswith("OK")
    assert lines["ISA"].startswith("OK")
    for mode in ("kprobe", "fentry"):
        usable, _ = attach_support(mode)
        # doctor says what the tracer itself finds when it tries
        assert lines[f"attach {mode}"].startswith("OK" if usable else "FAIL")
    if not os.path.exists("/sys/bus/event_source/devices/kprobe/type") and not os.path.exists(
        "/sys/kernel/tracing/kprobe_events"
    ):
        assert lines["kprobes"].startswith("FAIL")
        assert lines["attach kprobe"].startswith("FAIL")
    assert "auto attach" in result.stdout and "tracing works here" in result.stdout
    # Lockdown is read from securityfs, mounted for a moment if it is not mounted.
    assert lines["lockdown"].split()[0] in ("OK", "WARN")
    with open("/proc/mounts") as mounts:
        assert "openat-securityfs" not in mounts.read()


# Runs openat in this process after dropping every capability (capset with
# empty sets): what an ordinary user has, while files stay readable (this
# Python may live under /root, where another uid could not read it).
WITHOUT_CAPABILITIES = """
import ctypes, runpy, sys
class Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
class Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
libc = ctypes.CDLL(None, use_errno=True)
if libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()) != 0:
    raise SystemExit("capset failed")
sys.argv = ["openat"] + sys.argv[1:]
runpy.run_module("openat", run_name="__main__")
"""


def run_unprivileged(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_CAPABILITIES, *args], capture_output=True, text=True, timeout=60)


def test_dump_needs_no_root_and_shows_sources():
    result = run_unprivileged("--dump", "-x", "-p", "42")
    assert result.returncode == 0, result.stderr
    assert "call 0x72 # bpf_probe_read_user_str" in result.stdout or "bpf_probe_read_user_str" in result.stdout
    assert "# probe.py:" in result.stdout
    assert "0x2a" in result.stdout  # the pid filter is in the code


def test_unprivileged_run_says_what_is_needed():
    result = run_unprivileged()
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CAP_BPF" in lines[0] and "root" in lines[0]
    assert "Traceback" not in result.stderr
