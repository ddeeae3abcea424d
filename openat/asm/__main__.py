"""Command line: ``python -m openat.asm assemble FILE.s [-o OUT]`` and
``python -m openat.asm disassemble FILE [--hex]``.

Exit status: 0 on success, 1 when the input is wrong (bad assembly, malformed bytes,
unreadable file), 2 for a usage error. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Sequence

from .disasm import disassemble
from .errors import AsmError, AsmSyntaxError, DecodeError
from .text import assemble

PROG = "python -m openat.asm"


def _read(path: str, binary: bool) -> bytes | str:
    if path == "-":
        return sys.stdin.buffer.read() if binary else sys.stdin.read()
    with open(path, "rb" if binary else "r", encoding=None if binary else "utf-8") as handle:
        return handle.read()


def _parse_hex(text: str) -> bytes:
    cleaned = re.sub(r"0[xX]|[\s,]", "", text)
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise DecodeError("input is not hex text (expected pairs of hex digits)") from None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="eBPF assembler and disassembler (LLVM BPF syntax).")
    commands = parser.add_subparsers(dest="command", required=True)
    asm = commands.add_parser("assemble", help="assemble LLVM-syntax text to raw instruction bytes")
    asm.add_argument("file", help="assembly source ('-' for stdin)")
    asm.add_argument("-o", "--output", help="output file (default: stdout)")
    asm.add_argument("--isa", default="v4", choices=("v1", "v2", "v3", "v4"), help="highest ISA level allowed (default v4)")
    dis = commands.add_parser("disassemble", help="disassemble raw instruction bytes to text")
    dis.add_argument("file", help="raw bytes ('-' for stdin)")
    dis.add_argument("--hex", action="store_true", help="FILE holds hex text (e.g. 'b7 01 00 00 ...') instead of raw bytes")
    dis.add_argument("--labels", action="store_true", help="name jump targets L<slot> instead of printing offsets")
    dis.add_argument("--helpers", action="store_true", help="comment helper calls with the helper's name")
    dis.add_argument("--bytes", action="store_true", help="show slot numbers and raw bytes, like llvm-objdump")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "assemble":
            source = _read(args.file, binary=False)
            code = assemble(source, isa=args.isa)  # type: ignore[arg-type]
            if args.output:
                with open(args.output, "wb") as handle:
                    handle.write(code)
            else:
                sys.stdout.buffer.write(code)
                sys.stdout.flush()
        else:
            raw = _read(args.file, binary=True)
            code = _parse_hex(raw.decode("utf-8", "replace")) if args.hex else raw  # type: ignore[union-attr]
            text = disassemble(code, labels=args.labels, helper_comments=args.helpers,  # type: ignore[arg-type]
                               addresses=args.bytes, hex_bytes=args.bytes)
            sys.stdout.write(text)
    except AsmSyntaxError as exc:
        print(f"{PROG}: error: {args.file}:{exc.line}:{exc.column}: {exc.reason}", file=sys.stderr)
        return 1
    except AsmError as exc:
        print(f"{PROG}: error: {args.file}: {exc}", file=sys.stderr)
        return 1
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"{PROG}: error: {args.file}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
