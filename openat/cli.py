"""``python -m openat``: print one line per open on the machine."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import List, Optional, Sequence

from .output import TIMESTAMP_MODES, Clock, JsonFormatter, TextFormatter, lost_record
from .probe import ATTACH_MODES, ProbeOptions

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

EXAMPLES = """\
examples:
  sudo openat                      # every open on the machine
  sudo openat --json               # one JSON object per line
  sudo openat --attach tracepoint  # force the syscall tracepoints
  sudo openat -d 10                # trace for ten seconds, then exit
  openat --dump                    # show the probe's bytecode (no root needed)
  sudo openat doctor               # what this kernel supports, and why
"""


def _positive_size(text: str) -> int:
    """A byte count: 4096, 64k, 4M or 1G."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    suffix = text[-1:].lower()
    try:
        value = int(text[:-1]) * units[suffix] if suffix in units else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 4096, 64k, 4M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return value


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openat",
        description="Trace open(), openat() and openat2() calls with eBPF, from pure Python.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument(
        "--attach",
        choices=("auto",) + ATTACH_MODES,
        default="auto",
        help="attach point (default: auto, the first that works of "
        + ", ".join(ATTACH_MODES)
        + ")",
    )
    parser.add_argument("--dump", action="store_true", help="print the probe's annotated disassembly and exit")
    parser.add_argument(
        "--timestamp",
        choices=TIMESTAMP_MODES,
        default="utc",
        help="time stamp of each line (default: utc, RFC 3339)",
    )
    parser.add_argument("-d", "--duration", type=_positive_number, metavar="SECONDS", help="stop after SECONDS")
    parser.add_argument(
        "--filename-size",
        type=int,
        default=ProbeOptions().filename_size,
        metavar="BYTES",
        help="bytes of each file name to capture, NUL included (default: %(default)s, 2..4096)",
    )
    parser.add_argument(
        "--ring-size",
        type=_positive_size,
        default=4 << 20,
        metavar="BYTES",
        help="ring buffer size, a power of two ≥ 4096 (default: 4M)",
    )
    return parser


class _Stop(Exception):
    """Raised by the SIGTERM handler so cleanup runs as for Ctrl-C."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``openat`` and ``python -m openat``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["doctor"]:
        from .doctor import main as doctor_main

        return doctor_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    ring_size = args.ring_size
    if ring_size < 4096 or ring_size & (ring_size - 1):
        parser.error(f"--ring-size must be a power of two of at least 4096, got {ring_size}")
    try:
        options = ProbeOptions(filename_size=args.filename_size, wakeup_mark=ring_size // 8)
    except ValueError as error:
        parser.error(str(error))

    if args.dump:
        from .tracer import dump_probe

        sys.stdout.write(dump_probe(args.attach, options))
        return EXIT_OK
    return _trace(args, options, ring_size)


def _warn(message: str) -> None:
    print(f"openat: {message}", file=sys.stderr, flush=True)


def _trace(args: argparse.Namespace, options: ProbeOptions, ring_size: int) -> int:
    from .syscalls.errors import BpfError
    from .tracer import Tracer, TracerError

    clock = Clock(args.timestamp)
    formatter = (JsonFormatter if args.json else TextFormatter)(clock)
    out = sys.stdout
    deadline = time.monotonic() + args.duration if args.duration else None

    def on_sigterm(signum: int, frame: object) -> None:
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    tracer = Tracer(attach=args.attach, options=options, ring_size=ring_size, report=_warn)
    try:
        try:
            tracer.start()
        except (TracerError, BpfError) as error:
            _warn(str(error))
            return EXIT_FAILURE
        lines: List[str] = []
        consume = lines.append

        def on_event(event: object) -> None:
            consume(formatter(event))

        try:
            while deadline is None or time.monotonic() < deadline:
                tracer.poll(on_event, timeout_ms=100)
                if lines:
                    lines.append("")
                    out.write("\n".join(lines))
                    out.flush()
                    lines.clear()
        except (KeyboardInterrupt, _Stop):
            pass
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, as cat does.
            _quiet_stdout()
        return EXIT_OK
    finally:
        lost = tracer.lost_events()
        tracer.close()
        signal.signal(signal.SIGTERM, previous)
        if lost:
            _warn(f"{lost} events lost (ring buffer full); try a larger --ring-size")
        if args.json and lost:
            try:
                out.write(lost_record(lost, lost) + "\n")
                out.flush()
            except BrokenPipeError:
                _quiet_stdout()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
