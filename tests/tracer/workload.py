"""The command the attach-mode tests run under ``openat -- ...``: a fixed set of opens, reported to a file.

Usage: python workload.py DIR REPORT EXIT_STATUS

In DIR it opens, in this order: ``abs`` by absolute path (openat), ``how``
with openat2, ``missing`` (fails: ENOENT), ``rel`` relative to its working
directory (DIR/sub, entered as ``DIR/sub/../sub``), ``atdir`` relative to a
directory fd on DIR, and (when the kernel allows io_uring) ``uring`` with
IORING_OP_OPENAT and IORING_OP_OPENAT2; then a forked child opens
``child`` and exits at once, and a thread opens ``thread``. REPORT gets one
JSON object per open: what was asked and what the kernel returned, with who
asked. The process exits with EXIT_STATUS.
"""

from __future__ import annotations

import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from opener import openat2  # noqa: E402  (a sibling test helper)
from uring import IORING_OP_OPENAT, IORING_OP_OPENAT2, Ring  # noqa: E402

CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


def main(directory: str, report_path: str, status: int) -> int:
    records = []

    def note(name: str, how: str, result: int, flags: int, full: str, **extra: object) -> None:
        records.append(dict(name=name, how=how, ret=result, flags=flags, path=full, pid=os.getpid(),
                            tid=threading.get_native_id(), **extra))

    def attempt(call, *args, **kwargs) -> int:
        try:
            return call(*args, **kwargs)
        except OSError as error:
            return -error.errno

    join = os.path.join
    note("abs", "openat", attempt(os.open, join(directory, "abs"), CREATE, 0o600), CREATE | os.O_CLOEXEC, join(directory, "abs"))
    note("how", "openat2", openat2(os.fsencode(join(directory, "how")), CREATE), CREATE, join(directory, "how"))
    note("missing", "openat", attempt(os.open, join(directory, "missing"), os.O_RDONLY), os.O_RDONLY | os.O_CLOEXEC,
         join(directory, "missing"))
    os.mkdir(join(directory, "sub"))
    os.chdir(join(directory, "sub", "..", "sub"))
    note("rel", "openat", attempt(os.open, "../sub/./rel", CREATE, 0o600), CREATE | os.O_CLOEXEC, join(directory, "sub", "rel"))
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    note("atdir", "openat", attempt(os.open, "atdir", CREATE, 0o600, dir_fd=dir_fd), CREATE | os.O_CLOEXEC,
         join(directory, "atdir"))
    try:
        ring = Ring()
    except OSError as error:
        note("uring", "unsupported", -error.errno, 0, "")
    else:
        open(join(directory, "uring"), "w").close()
        for how, opcode in (("io_uring_openat", IORING_OP_OPENAT), ("io_uring_openat2", IORING_OP_OPENAT2)):
            note("uring", how, ring.run(opcode, dir_fd, b"uring"), os.O_RDONLY, join(directory, "uring"))
    child = os.fork()
    if child == 0:
        os.close(os.open(join(directory, "child"), CREATE, 0o600))
        os._exit(0)
    os.waitpid(child, 0)
    records.append(dict(name="child", how="openat", ret=None, flags=CREATE | os.O_CLOEXEC, path=join(directory, "child"),
                        pid=child, tid=child))
    thread = threading.Thread(target=lambda: note("thread", "openat", attempt(os.open, join(directory, "thread"), CREATE, 0o600),
                                                  CREATE | os.O_CLOEXEC, join(directory, "thread")))
    thread.start()
    thread.join()
    with open(report_path, "w") as report:
        for record in records:
            report.write(json.dumps(record) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
