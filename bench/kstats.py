"""In-kernel cost: BPF run-time statistics of the programs a tracer loaded.

The kernel counts run_time_ns and run_cnt per program only while statistics are
enabled, because timing every program run costs two clock reads. Enabling is
done with BPF_ENABLE_STATS through ``openat.syscalls`` when it offers it (the
stats stay on only while its fd is held, so a crash cannot leave them on), else
with the ``kernel.bpf_stats_enabled`` sysctl, restored afterwards.

Programs are attributed to a tracer by reading /proc/PID/fdinfo of its bpf-prog
fds, which carries prog_id, run_time_ns and run_cnt: exact even when other
engineers load programs at the same time. If the tracer keeps no prog fd (it
may close it once attached through a perf event), the fallback is the ids that
appeared between before and after its start, listed through ``openat.syscalls``
(PROG_GET_NEXT_ID walk) when it has it, else with bpftool as a bench-only aid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from typing import Any, Iterator, Optional

SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"


@contextlib.contextmanager
def stats_enabled() -> Iterator[str]:
    """Keep BPF run-time statistics on for the block; yields how they were enabled."""
    handle = _enable_via_openat()
    if handle is not None:
        try:
            yield "BPF_ENABLE_STATS via openat.syscalls"
        finally:
            _close(handle)
        return
    with open(SYSCTL) as f:
        previous = f.read().strip()
    with open(SYSCTL, "w") as f:
        f.write("1")
    try:
        yield f"sysctl kernel.bpf_stats_enabled=1 (was {previous}, restored after)"
    finally:
        with open(SYSCTL, "w") as f:
            f.write(previous)


def _enable_via_openat() -> Any:
    """A handle from openat.syscalls' BPF_ENABLE_STATS wrapper, or None when it has none yet."""
    try:
        import openat.syscalls as sc
    except Exception:
        return None
    for name in ("enable_stats", "bpf_enable_stats", "enable_run_time_stats"):
        func = getattr(sc, name, None)
        if func is None:
            continue
        for args in ((), (0,)):  # 0 = BPF_STATS_RUN_TIME, the only stats type
            try:
                return func(*args)
            except TypeError:
                continue
            except Exception:
                return None
    return None


def _close(handle: Any) -> None:
    if isinstance(handle, int):
        os.close(handle)
    elif hasattr(handle, "close"):
        handle.close()
    elif hasattr(handle, "__exit__"):
        handle.__exit__(None, None, None)


def _fdinfo(path: str) -> dict[str, str]:
    fields = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    return fields


def process_programs(pid: int) -> dict[int, dict[str, Any]]:
    """BPF programs held by ``pid``'s fds, with their counters, keyed by prog id.

    Links are read too: they name the attach point, which tells which programs
    actually run (a loaded but detached program would show run_cnt 0 anyway).
    """
    programs: dict[int, dict[str, Any]] = {}
    attach: dict[int, str] = {}
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return programs
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
            if "bpf" not in target:
                continue
            info = _fdinfo(f"/proc/{pid}/fdinfo/{fd}")
        except OSError:
            continue  # fd closed while walking
        if "prog_id" not in info:
            continue
        prog_id = int(info["prog_id"])
        if "run_time_ns" in info:
            programs[prog_id] = {
                "id": prog_id,
                "tag": info.get("prog_tag"),
                "run_time_ns": int(info["run_time_ns"]),
                "run_cnt": int(info["run_cnt"]),
            }
        elif "tp_name" in info:
            attach[prog_id] = info["tp_name"]
    for prog_id, tp in attach.items():
        if prog_id in programs:
            programs[prog_id]["attach"] = tp
    return programs


def bpftool_programs() -> Optional[dict[int, dict[str, Any]]]:
    """Every loaded program with counters, via bpftool (a bench-only aid), or None without it."""
    tool = shutil.which("bpftool")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, "-j", "prog", "show"], capture_output=True, text=True, timeout=30, check=True)
        listing = json.loads(out.stdout or "[]")
    except (subprocess.SubprocessError, ValueError):
        return None
    return {
        p["id"]: {
            "id": p["id"],
            "name": p.get("name"),
            "type": p.get("type"),
            "tag": p.get("tag"),
            # bpftool leaves the counters out while they are zero
            "run_time_ns": p.get("run_time_ns", 0),
            "run_cnt": p.get("run_cnt", 0),
        }
        for p in listing
    }


def syscalls_programs() -> Optional[dict[int, dict[str, Any]]]:
    """Every loaded program with counters via openat.syscalls, or None while it lacks the walk."""
    try:
        import openat.syscalls as sc

        walk, by_id, info_of = sc.prog_ids, sc.prog_get_fd_by_id, sc.prog_info
    except Exception:
        return None
    programs: dict[int, dict[str, Any]] = {}
    try:
        ids = list(walk())
    except Exception:
        return None
    for prog_id in ids:
        try:
            with by_id(prog_id) as fd:
                info = info_of(fd)
        except Exception:
            continue  # unloaded between the walk and the lookup
        programs[prog_id] = {
            "id": prog_id,
            "name": info.name,
            "type": getattr(info, "type_name", str(info.type)),
            "tag": info.tag,
            "run_time_ns": info.run_time_ns,
            "run_cnt": info.run_cnt,
        }
    return programs


def all_programs() -> Optional[dict[int, dict[str, Any]]]:
    """Every loaded program: the project's own bpf() layer first, bpftool if that fails."""
    listing = syscalls_programs()
    return listing if listing is not None else bpftool_programs()


def names_for(ids: set[int]) -> dict[int, str]:
    """Program names for the report, best effort."""
    listing = all_programs() or {}
    return {i: listing[i]["name"] for i in ids if i in listing and listing[i].get("name")}


def delta(before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-program counter growth between two snapshots of the same programs."""
    out = []
    for prog_id, now in sorted(after.items()):
        then = before.get(prog_id, {"run_time_ns": 0, "run_cnt": 0})
        entry = dict(now)
        entry["run_time_ns"] = now["run_time_ns"] - then["run_time_ns"]
        entry["run_cnt"] = now["run_cnt"] - then["run_cnt"]
        out.append(entry)
    return out


def subtract_background(
    measured: list[dict[str, Any]], background: list[dict[str, Any]], scale: float
) -> list[dict[str, Any]]:
    """``measured`` less ``background`` scaled to the same window length, floored at 0.

    The background comes from an idle window with the tracer attached; scaling
    assumes everyone else's syscall rate stayed the same while the generator ran.
    """
    idle = {p["id"]: p for p in background}
    out = []
    for program in measured:
        entry = dict(program)
        other = idle.get(program["id"])
        if other:
            entry["run_time_ns"] = max(round(program["run_time_ns"] - other["run_time_ns"] * scale), 0)
            entry["run_cnt"] = max(round(program["run_cnt"] - other["run_cnt"] * scale), 0)
        out.append(entry)
    return out
