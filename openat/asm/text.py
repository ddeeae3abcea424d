"""Text → bytes: an assembler for LLVM's BPF syntax (the disassembler's output).

Accepts what ``llvm-objdump -d`` prints and ``llvm-mc -triple bpfel -mcpu=v4`` reads: one
instruction per line, ``name:`` labels, ``#`` and ``//`` comments (and ``/* */`` within a
line), decimal or hex numbers, jump targets as ``+N``/``-N`` or label names, plus the
extensions documented in :mod:`openat.asm.disasm` (``call pc+N``, ``call kfunc N``,
``skb[rN + K]``). ``call bpf_NAME`` calls a helper by name when no label has that name.

The text assembler works at the encoding level: any encodable value is accepted (so every
disassembled program reassembles), but nothing is truncated: a value that does not fit its
field, an unknown register, a width mix-up or an undefined label is an
:class:`~openat.asm.errors.AsmSyntaxError` with the line and column.
"""

from __future__ import annotations

import re
from typing import Callable, Match, Optional

from ..fieldtuple import FieldTuple
from .errors import AsmError, AsmSyntaxError
from .helper_ids import HELPER_IDS
from .instruction import (
    Instruction,
    INT16_MAX,
    INT16_MIN,
    INT32_MAX,
    INT32_MIN,
    INT64_MIN,
    UINT32_MAX,
    UINT64_MAX,
    describe_level,
    field_problem,
    required_level,
    signed64,
)
from .opcodes import (
    ALU_OP_SYMBOLS,
    BPF_ABS,
    BPF_ADD,
    BPF_ALU,
    BPF_ALU64,
    BPF_AND,
    BPF_ATOMIC,
    BPF_CALL,
    BPF_CALLX,
    BPF_CMPXCHG,
    BPF_DIV,
    BPF_END,
    BPF_EXIT,
    BPF_FETCH,
    BPF_IND,
    BPF_JA,
    BPF_JMP,
    BPF_JMP32,
    BPF_LD,
    BPF_LDX,
    BPF_MEM,
    BPF_MEMSX,
    BPF_MOD,
    BPF_MOV,
    BPF_NEG,
    BPF_OR,
    BPF_ST,
    BPF_STX,
    BPF_TO_BE,
    BPF_TO_LE,
    BPF_X,
    BPF_XCHG,
    BPF_XOR,
    ISA_LEVELS,
    JMP_OP_SYMBOLS,
    LDDW,
    SIZE_BYTES,
)
from .program import Program

__all__ = ["assemble", "assemble_program"]

# ASCII only, spelled out: \d and \w would also match other scripts' digits and letters
# (r\uff11 is not r1), and every pattern is compiled with re.ASCII so that \s is too.
_NUM = r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)"
_UNUM = r"(?:0[xX][0-9a-fA-F]+|[0-9]+)"
_REG = r"[rw][0-9]+"
_IDENT = r"[A-Za-z_.$][A-Za-z0-9_.$]*"
_ADDR = rf"(?P<base>{_REG})\s*(?P<sign>[+-])\s*(?P<off>{_UNUM})"
_SIZE_BITS = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}
_ALU_BY_SYMBOL = {sym: op for op, sym in ALU_OP_SYMBOLS.items()}
_JMP_BY_SYMBOL = {sym: op for op, sym in JMP_OP_SYMBOLS.items()}
_ATOMIC_BY_SYMBOL = {"+=": BPF_ADD, "|=": BPF_OR, "&=": BPF_AND, "^=": BPF_XOR}
_ATOMIC_FETCH = {"add": BPF_ADD, "or": BPF_OR, "and": BPF_AND, "xor": BPF_XOR}
_IGNORED_DIRECTIVES = {
    ".text", ".globl", ".global", ".type", ".size", ".p2align", ".section", ".file", ".align",
}


def _c(pattern: str) -> "re.Pattern[str]":
    return re.compile(r"\s*" + pattern + r"\s*\Z", re.ASCII)


_P_EXIT = _c(r"exit")
_P_CALLX = _c(rf"callx\s+(?P<dst>{_REG})")
_P_GOTO = _c(rf"(?P<mn>gotol|goto)\s+(?P<target>{_NUM}|{_IDENT})")
_P_CALL = _c(rf"call\s+(?:(?P<kfunc>kfunc)\s+(?P<kid>{_NUM})|pc\s*(?P<pc_sign>[+-])\s*(?P<pc>{_UNUM})|(?P<imm>{_NUM})|(?P<label>{_IDENT}))")
_P_IF = _c(
    rf"if\s+(?P<dst>{_REG})\s*(?P<op>==|!=|s>=|s<=|s>|s<|>=|<=|>|<|&)\s*"
    rf"(?:(?P<src>{_REG})|(?P<imm>{_NUM}))\s+goto\s+(?P<target>{_NUM}|{_IDENT})"
)
_P_LOCK = _c(rf"lock\s+\*\(\s*u(?P<bits>\d+)\s*\*\)\s*\(\s*{_ADDR}\s*\)\s*(?P<op>\+=|\|=|&=|\^=)\s*(?P<src>{_REG})")
_P_STORE = _c(rf"\*\(\s*u(?P<bits>\d+)\s*\*\)\s*\(\s*{_ADDR}\s*\)\s*=\s*(?:(?P<src>{_REG})|(?P<imm>{_NUM}))")
_P_PSEUDO = _c(rf"ld_pseudo\s+(?P<dst>{_REG})\s*,\s*(?P<kind>{_NUM})\s*,\s*(?P<imm>{_NUM})")
_P_ASSIGN = re.compile(rf"\s*(?P<dst>{_REG})\s*(?P<op>=|\+=|-=|\*=|/=|%=|\|=|&=|\^=|<<=|>>=|s>>=|s/=|s%=)\s*", re.ASCII)
_R_LOAD = _c(rf"\*\(\s*(?P<sign_kind>[us])(?P<bits>\d+)\s*\*\)\s*\(\s*{_ADDR}\s*\)")
_R_SKB = _c(
    rf"\*\(\s*u(?P<bits>\d+)\s*\*\)\s*skb\[\s*(?:(?P<src>{_REG})(?:\s*(?P<isign>[+-])\s*(?P<ioff>{_UNUM}))?|(?P<imm>{_NUM}))\s*\]"
)
_R_FETCH = _c(rf"atomic_fetch_(?P<op>add|or|and|xor)\(\s*\(\s*u(?P<bits>\d+)\s*\*\)\s*\(\s*{_ADDR}\s*\)\s*,\s*(?P<src>{_REG})\s*\)")
_R_XCHG = _c(rf"(?P<mn>xchg_64|xchg32_32)\(\s*{_ADDR}\s*,\s*(?P<src>{_REG})\s*\)")
_R_CMPXCHG = _c(rf"(?P<mn>cmpxchg_64|cmpxchg32_32)\(\s*{_ADDR}\s*,\s*(?P<r0>{_REG})\s*,\s*(?P<src>{_REG})\s*\)")
_R_NEG = _c(rf"-\s*(?P<src>{_REG})")
_R_MOVSX = _c(rf"\(\s*s(?P<bits>\d+)\s*\)\s*(?P<src>{_REG})")
_R_SWAP = _c(rf"(?P<mn>le|be|bswap)(?P<bits>\d+)\s+(?P<src>{_REG})")
_R_WIDE = _c(rf"(?P<imm>{_NUM})\s+ll")
_R_REG = _c(rf"(?P<src>{_REG})")
_R_IMM = _c(rf"(?P<imm>{_NUM})")
_LABEL_DEF = re.compile(rf"\s*(?P<name>{_IDENT})\s*:", re.ASCII)


class _Line:
    """One source line being assembled: gives errors their line and column."""

    __slots__ = ("number", "text", "start")

    def __init__(self, number: int, text: str, start: int) -> None:
        self.number = number
        self.text = text
        self.start = start  # column offset of the statement within the line

    def error(self, message: str, column_in_statement: int = 0) -> AsmSyntaxError:
        return AsmSyntaxError(message, self.number, self.start + column_in_statement + 1, self.text)


# More significant digits than any 64-bit field's value has (UINT64_MAX is 20 decimal
# digits, 16 hex). A longer number stands for "too large" without int() ever seeing it:
# int() takes quadratic time in the digits and refuses more than 4,300 of them.
_MAX_DIGITS = {10: 20, 16: 16}
_TOO_LARGE = 1 << 80  # beyond every field's range, so the caller's range check reports it


def _shown(text: str, limit: int = 24) -> str:
    """``text`` for a one-line error message: long operands shortened, with their length."""
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...{text[-4:]} ({len(text)} characters)"


def _number(line: _Line, m: Match[str], group: str, negative: bool = False) -> int:
    """The ASCII decimal or 0x hex number (with an optional sign) in ``group``, negated if ``negative``.

    A decimal with a leading 0 is an error (LLVM would read it as octal); a number with more
    digits than 64 bits hold comes back as ``±_TOO_LARGE`` for the caller's range check.
    """
    text = m.group(group)
    digits = text.lstrip("+-")
    if text.startswith("-"):
        negative = not negative
    if digits[:2] in ("0x", "0X"):
        base, significant = 16, digits[2:].lstrip("0") or "0"
    else:
        if len(digits) > 1 and digits.startswith("0"):
            raise line.error(
                f"ambiguous number {_shown(text)!r}: LLVM reads a leading 0 as octal; write it in decimal or 0x hex",
                m.start(group),
            )
        base, significant = 10, digits
    value = _TOO_LARGE if len(significant) > _MAX_DIGITS[base] else int(significant, base)
    return -value if negative else value


def _in_range(line: _Line, m: Match[str], group: str, low: int, high: int, what: str,
              negative: bool = False) -> int:
    value = _number(line, m, group, negative)
    if not low <= value <= high:
        shown = ("-" if negative else "") + _shown(m.group(group))
        raise line.error(f"{what} {shown} does not fit ({low}..{high})", m.start(group))
    return value


def _register(line: _Line, m: Match[str], group: str) -> tuple[int, bool]:
    text = m.group(group)
    digits = text[1:]
    if len(digits) > 2 or (len(digits) == 2 and digits[0] == "0") or int(digits) > 10:
        raise line.error(f"no register {_shown(text)} (r0-r10 / w0-w10 exist)", m.start(group))
    return int(digits), text[0] == "w"


def _address(line: _Line, m: Match[str]) -> tuple[int, int]:
    base, is32 = _register(line, m, "base")
    if is32:
        raise line.error("the address register must be a 64-bit r register", m.start("base"))
    off = _number(line, m, "off", m.group("sign") == "-")
    if not INT16_MIN <= off <= INT16_MAX:
        raise line.error(f"offset {m.group('sign')}{_shown(m.group('off'))} does not fit in 16 bits", m.start("off"))
    return base, off


def _access_bits(line: _Line, m: Match[str], allowed: tuple[int, ...]) -> int:
    text = m.group("bits")
    for bits in allowed:
        if text == str(bits):  # compared as text: no int() of a long digit string
            return bits
    raise line.error(f"access size must be one of {', '.join(f'u{b}' for b in allowed)}", m.start("bits"))


def _signed32(value: int) -> int:
    return value - (1 << 32) if value > INT32_MAX else value


class _Reference(FieldTuple):
    """A label an instruction refers to, and where the reference is in the text."""

    label: str
    slot: int  # the referring instruction's
    kind: str  # as Program.append takes it
    line: _Line
    column: int


class _Assembler:
    def __init__(self, text: str, isa: str, callx: bool = False) -> None:
        self.program = Program(isa=isa, callx=callx)
        self.text = text
        self.references: list[_Reference] = []
        self.label_names: set[str] = set()

    def run(self) -> Program:
        # Pass 1: split lines into label definitions and instruction statements, so that
        # 'call bpf_NAME' can tell a helper from a label defined further down.
        labels: list[tuple[int, str, int]] = []  # (position in statements, name, column)
        statements: list[tuple[_Line, str]] = []
        for number, raw in enumerate(self.text.splitlines(), 1):
            body = _strip_comments(raw, number)
            position = 0
            while True:
                m = _LABEL_DEF.match(body, position)
                if not m:
                    break
                labels.append((len(statements), m.group("name"), m.start("name") + 1))
                statements.append((_Line(number, raw, 0), ""))
                self.label_names.add(m.group("name"))
                position = m.end()
            if body[position:].strip():
                statements.append((_Line(number, raw, position), body[position:]))
        label_at = {index: (name, column) for index, name, column in labels}
        defined: set[str] = set()
        for index, (line, body) in enumerate(statements):
            if index in label_at:
                name, column = label_at[index]
                if name in defined:
                    raise AsmSyntaxError(f"duplicate label {name!r}", line.number, column, line.text)
                defined.add(name)
                self.program.label(name, source=f"line {line.number}")
                continue
            self.statement(line, body)
        self.check_references()
        return self.program

    # ---------------------------------------------------------------- emission

    def emit(self, line: _Line, opcode: int, dst: int, src: int, off: int, imm: int,
             target: Optional[str] = None, kind: str = "jump") -> int:
        problem = field_problem(opcode, dst, src, off, imm)
        if problem:
            raise line.error(problem)
        level = required_level(opcode, src, off, imm)
        if level > self.program.level:
            raise line.error(
                f"{describe_level(opcode, src, off, imm)} needs ISA v{level}, but the target is {self.program.isa}"
            )
        return self.program.append(Instruction(opcode, dst, src, off, imm, f"line {line.number}"), target, kind)

    def emit_jump(self, line: _Line, m: Match[str], opcode: int, dst: int, src: int, imm: int,
                  kind: str) -> None:
        target = m.group("target")
        if target[0] in "+-" or target[0].isdigit():
            if kind == "call":  # gotol: offset in imm
                self.emit(line, opcode, dst, src, 0, _in_range(line, m, "target", INT32_MIN, INT32_MAX, "jump offset"))
            else:
                self.emit(line, opcode, dst, src, _in_range(line, m, "target", INT16_MIN, INT16_MAX, "jump offset"), imm)
            return
        self.emit_label_ref(line, m, "target", opcode, dst, src, imm, kind)

    def emit_label_ref(self, line: _Line, m: Match[str], group: str, opcode: int, dst: int,
                       src: int, imm: int, kind: str) -> None:
        label = m.group(group)
        self.references.append(_Reference(label, self.program.slot_count, kind, line, m.start(group)))
        self.emit(line, opcode, dst, src, 0, imm, label, kind)

    def check_references(self) -> None:
        """Every label reference resolves, within its field's reach (errors with line and column)."""
        labels = self.program.labels
        for ref in self.references:
            target = labels.get(ref.label)
            if target is None:
                raise ref.line.error(f"undefined label {ref.label!r}", ref.column)
            delta = target - ref.slot - 1
            if ref.kind == "jump" and not INT16_MIN <= delta <= INT16_MAX:
                raise ref.line.error(
                    f"label {ref.label!r} is {delta} slots away, beyond the 16-bit jump offset", ref.column
                )
            if ref.kind == "ja" and not INT16_MIN <= delta <= INT16_MAX and self.program.level < 4:
                raise ref.line.error(f"label {ref.label!r} is {delta} slots away; use gotol (v4)", ref.column)

    # ---------------------------------------------------------------- statements

    def statement(self, line: _Line, body: str) -> None:
        word = body.lstrip()[:4]
        if word.startswith("if"):
            return self.conditional(line, body)
        if word == "goto":
            return self.goto(line, body)
        if word == "call":
            return self.call(line, body)
        if word == "exit":
            if not _P_EXIT.match(body):
                raise line.error("exit takes no operands")
            self.emit(line, BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
            return None
        if word == "lock":
            return self.lock(line, body)
        if word.startswith("*("):
            return self.store(line, body)
        if word == "ld_p":
            return self.pseudo(line, body)
        if word == "call" or body.lstrip().startswith("callx"):
            raise line.error("callx is not an RFC 9669 instruction")
        if body.lstrip().startswith("."):
            directive = body.split()[0]
            if directive in _IGNORED_DIRECTIVES:
                return None
            raise line.error(f"unsupported directive {directive}", body.index(directive))
        m = _P_ASSIGN.match(body)
        if not m:
            raise line.error("not an instruction: expected 'rN = ...', 'rN op= ...', if/goto/call/exit, a store or lock", len(body) - len(body.lstrip()))
        return self.assignment(line, body, m)

    def conditional(self, line: _Line, body: str) -> None:
        m = _P_IF.match(body)
        if not m:
            raise line.error("expected 'if rA OP rB|IMM goto TARGET' with OP one of == != > >= < <= & s> s>= s< s<=")
        dst, is32 = _register(line, m, "dst")
        cls = BPF_JMP32 if is32 else BPF_JMP
        op = _JMP_BY_SYMBOL[m.group("op")]
        if m.group("src"):
            src, src32 = _register(line, m, "src")
            if src32 is not is32:
                raise line.error("mixes r and w registers", m.start("src"))
            self.emit_jump(line, m, cls | op | BPF_X, dst, src, 0, "jump")
        else:
            low, high = (INT32_MIN, UINT32_MAX) if is32 else (INT32_MIN, INT32_MAX)
            imm = _signed32(_in_range(line, m, "imm", low, high, "immediate"))
            self.emit_jump(line, m, cls | op, dst, 0, imm, "jump")

    def goto(self, line: _Line, body: str) -> None:
        m = _P_GOTO.match(body)
        if not m:
            raise line.error("expected 'goto +N', 'goto -N', 'goto LABEL' or 'gotol ...'")
        if m.group("mn") == "gotol":
            self.emit_jump(line, m, BPF_JMP32 | BPF_JA, 0, 0, 0, "call")
        else:
            self.emit_jump(line, m, BPF_JMP | BPF_JA, 0, 0, 0, "ja")

    def call(self, line: _Line, body: str) -> None:
        if body.lstrip().startswith("callx"):
            return self.callx(line, body)
        m = _P_CALL.match(body)
        if not m:
            raise line.error("expected 'call N', 'call LABEL', 'call bpf_HELPER', 'call pc+N' or 'call kfunc N'")
        op = BPF_JMP | BPF_CALL
        if m.group("imm") is not None:
            self.emit(line, op, 0, 0, 0, _in_range(line, m, "imm", INT32_MIN, INT32_MAX, "helper id"))
        elif m.group("kfunc"):
            self.emit(line, op, 0, 2, 0, _in_range(line, m, "kid", INT32_MIN, INT32_MAX, "BTF id"))
        elif m.group("pc") is not None:
            negative = m.group("pc_sign") == "-"
            self.emit(line, op, 0, 1, 0, _in_range(line, m, "pc", INT32_MIN, INT32_MAX, "call offset", negative))
        else:
            name = m.group("label")
            helper = HELPER_IDS.get(name[4:]) if name.startswith("bpf_") else None
            if helper is not None and name not in self.label_names:
                self.emit(line, op, 0, 0, 0, helper)
            else:
                self.emit_label_ref(line, m, "label", op, 0, 1, 0, "call")

    def callx(self, line: _Line, body: str) -> None:
        if not self.program.callx_allowed:
            raise line.error("callx is not an RFC 9669 instruction (the kernel rejects it); "
                             "assemble(..., callx=True) emits it for a runtime that has it")
        m = _P_CALLX.match(body)
        if not m:
            raise line.error("expected 'callx rN'")
        dst, is32 = _register(line, m, "dst")
        if is32:
            raise line.error("callx needs an r register", m.start("dst"))
        problem = field_problem(BPF_CALLX, dst, 0, 0, 0, callx=True)
        if problem:
            raise line.error(problem)
        self.program.append(tuple.__new__(Instruction, (BPF_CALLX, dst, 0, 0, 0, f"line {line.number}")))

    def lock(self, line: _Line, body: str) -> None:
        m = _P_LOCK.match(body)
        if not m:
            raise line.error("expected 'lock *(u32|u64 *)(rN + OFF) OP= REG' with OP one of += |= &= ^=")
        bits = _access_bits(line, m, (32, 64))
        base, off = _address(line, m)
        src, is32 = _register(line, m, "src")
        if bits == 64 and is32:
            raise line.error("a 64-bit atomic needs an r register", m.start("src"))
        size_bits = _SIZE_BITS[bits // 8]
        self.emit(line, BPF_STX | BPF_ATOMIC | size_bits, base, src, off, _ATOMIC_BY_SYMBOL[m.group("op")])

    def store(self, line: _Line, body: str) -> None:
        m = _P_STORE.match(body)
        if not m:
            raise line.error("expected '*(uN *)(rN + OFF) = REG|IMM'")
        bits = _access_bits(line, m, (8, 16, 32, 64))
        base, off = _address(line, m)
        size_bits = _SIZE_BITS[bits // 8]
        if m.group("src"):
            src, is32 = _register(line, m, "src")
            if bits == 64 and is32:
                raise line.error("a 64-bit store needs an r register", m.start("src"))
            self.emit(line, BPF_STX | BPF_MEM | size_bits, base, src, off, 0)
        else:
            high = INT32_MAX if bits == 64 else UINT32_MAX
            imm = _signed32(_in_range(line, m, "imm", INT32_MIN, high, "immediate"))
            self.emit(line, BPF_ST | BPF_MEM | size_bits, base, 0, off, imm)

    def pseudo(self, line: _Line, body: str) -> None:
        m = _P_PSEUDO.match(body)
        if not m:
            raise line.error("expected 'ld_pseudo rN, SRC, IMM64'")
        dst, is32 = _register(line, m, "dst")
        if is32:
            raise line.error("ld_pseudo needs an r register", m.start("dst"))
        kind = _in_range(line, m, "kind", 1, 6, "pseudo source")
        imm = _in_range(line, m, "imm", INT64_MIN, UINT64_MAX, "value")
        self.emit(line, LDDW, dst, kind, 0, signed64(imm))

    def assignment(self, line: _Line, body: str, head: Match[str]) -> None:
        dst, is32 = _register(line, head, "dst")
        op_text = head.group("op")
        rest_at = head.end()
        rest = body[rest_at:]
        sub = _Line(line.number, line.text, line.start + rest_at)
        if op_text != "=":
            return self.alu(line, head, sub, rest, dst, is32, op_text)
        for pattern, handler in self._rhs:
            m = pattern.match(rest)
            if m:
                return handler(self, line, head, sub, m, dst, is32)
        raise sub.error("cannot parse the right-hand side", len(rest) - len(rest.lstrip()))

    def alu(self, line: _Line, head: Match[str], sub: _Line, rest: str, dst: int, is32: bool,
            op_text: str) -> None:
        signed = op_text in ("s/=", "s%=")
        op = _ALU_BY_SYMBOL[op_text[1:] if signed else op_text]
        cls = BPF_ALU if is32 else BPF_ALU64
        off = 1 if signed else 0
        m = _R_REG.match(rest)
        if m:
            src, src32 = _register(sub, m, "src")
            if src32 is not is32:
                raise sub.error("mixes r and w registers", m.start("src"))
            self.emit(line, cls | op | BPF_X, dst, src, off, 0)
            return
        m = _R_IMM.match(rest)
        if not m:
            raise sub.error("expected a register or an immediate", len(rest) - len(rest.lstrip()))
        high = UINT32_MAX if is32 else INT32_MAX
        imm = _signed32(_in_range(sub, m, "imm", INT32_MIN, high, "immediate"))
        self.emit(line, cls | op, dst, 0, off, imm)

    # Right-hand sides of 'rN = ...'.
    def _rhs_load(self, line: _Line, head: Match[str], sub: _Line, m: Match[str], dst: int, is32: bool) -> None:
        signed = m.group("sign_kind") == "s"
        bits = _access_bits(sub, m, (8, 16, 32) if signed else (8, 16, 32, 64))
        base, off = _address(sub, m)
        if is32 and (bits == 64 or signed):
            raise line.error("a 64-bit or sign-extending load needs an r destination", head.start("dst"))
        mode = BPF_MEMSX if signed else BPF_MEM
        self.emit(line, BPF_LDX | mode | _SIZE_BITS[bits // 8], dst, base, off, 0)

    def _rhs_skb(self, line: _Line, head: Match[str], sub: _Line, m: Match[str], dst: int, is32: bool) -> None:
        bits = _access_bits(sub, m, (8, 16, 32))
        if dst != 0 or is32:
            raise line.error("packet loads always write r0", head.start("dst"))
        size_bits = _SIZE_BITS[bits // 8]
        if m.group("src"):
            src, src32 = _register(sub, m, "src")
            if src32:
                raise sub.error("the index register must be an r register", m.start("src"))
            imm = 0
            if m.group("ioff"):
                imm = _in_range(sub, m, "ioff", 0, 1 << 31, "offset")
                imm = -imm if m.group("isign") == "-" else imm
                if imm > INT32_MAX:
                    raise sub.error("offset does not fit in 32 bits", m.start("ioff"))
            self.emit(line, BPF_LD | BPF_IND | size_bits, 0, src, 0, imm)
        else:
            imm = _in_range(sub, m, "imm", INT32_MIN, INT32_MAX, "offset")
            self.emit(line, BPF_LD | BPF_ABS | size_bits, 0, 0, 0, imm)

    def _atomic_regs(self, line: _Line, sub: _Line, m: Match[str], dst: int, is32: bool, bits: int) -> int:
        src, src32 = _register(sub, m, "src")
        if src32 is not is32 or is32 is not (bits == 32):
            raise sub.error(f"a {bits}-bit atomic uses {'w' if bits == 32 else 'r'} registers on both sides", m.start("src"))
        return src

    def _rhs_fetch(self, line: _Line, head: Match[str], sub: _Line, m: Match[str], dst: int, is32: bool) -> None:
        bits = _access_bits(sub, m, (32, 64))
        base, off = _address(sub, m)
        src = self._atomic_regs(line, sub, m, dst, is32, bits)
        if src != dst:
            raise line.error("the fetched value goes to the source register: write rS = atomic_fetch_OP(..., rS)", head.start("dst"))
        operation = _ATOMIC_FETCH[m.group("op")] | BPF_FETCH
        self.emit(line, BPF_STX | BPF_ATOMIC | _SIZE_BITS[bits // 8], base, src, off, operation)

    def _rhs_xchg(self, line: _Line, head: Match[str], sub: _Line, m: Match[str], dst: int, is32: bool) -> None:
        bits = 32 if m.group("mn") == "xchg32_32" else 64
        base, off = _address(sub, m)
        src = self._atomic_regs(line, sub, m, dst, is32, bits)
        if src != dst:
            raise line.error("xchg writes the old value to its source register: rS = xchg_64(..., rS)", head.start("dst"))
        self.emit(line, BPF_STX | BPF_ATOMIC | _SIZE_BITS[bits // 8], base, src, off, BPF_XCHG)

    def _rhs_cmpxchg(self, line: _Line, head: Match[str], sub: _Line, m: Match[str], dst: int, is32: bool) -> None:
        bits = 32 if m.group("mn") == "cmpxchg32_32" else 64
        base, off = _address(sub, m)
        src = self._atomic_regs(line, sub, m, dst, is32, bits)
        r0, r0_is32 = _register(sub, m, "r0")
        if dst != 0 or r0 != 0 or r0_is32 is not is32:
            raise line.error("cmpxchg compares with and writes r0: r0 = cmpxchg_64(rB + OFF, r0, rS)", head.start("dst"))
        self.emit(line, BPF_STX | BPF_ATOMIC | _SIZE_BITS[bits // 8], base, src, off, BPF_CMPXCHG)

    def _rhs_neg(self, line: _Line, head: Match[str], sub: _Line, m: Match[str], dst: int, is32: bool) -> None:
        src, src32 = _register(sub, m, "src")
        if src != dst or src32 is not is32:
            raise sub.error("neg negates in place: rN = -rN", m.start("src"))
        self.emit(line, (BPF_ALU if is32 else BPF_ALU64) | BPF_NEG, dst, 0, 0, 0)

    def _rhs_movsx(self, line: _Line, head: Match[str], sub: _Line, m: Match[str], dst: int, is32: bool) -> None:
        src, src32 = _register(sub, m, "src")
        if src32 is not is32:
            raise sub.error("mixes r and w registers", m.start("src"))
        bits = _access_bits(sub, m, (8, 16) if is32 else (8, 16, 32))
        self.emit(line, (BPF_ALU if is32 else BPF_ALU64) | BPF_MOV | BPF_X, dst, src, bits, 0)

    def _rhs_swap(self, line: _Line, head: Match[str], sub: _Line, m: Match[str], dst: int, is32: bool) -> None:
        src, src32 = _register(sub, m, "src")
        if src != dst or src32 or is32:
            raise sub.error("byte swaps work in place on an r register: rN = be16 rN", m.start("src"))
        bits = _access_bits(sub, m, (16, 32, 64))
        opcode = {"le": BPF_ALU | BPF_END | BPF_TO_LE, "be": BPF_ALU | BPF_END | BPF_TO_BE,
                  "bswap": BPF_ALU64 | BPF_END}[m.group("mn")]
        self.emit(line, opcode, dst, 0, 0, bits)

    def _rhs_wide(self, line: _Line, head: Match[str], sub: _Line, m: Match[str], dst: int, is32: bool) -> None:
        if is32:
            raise line.error("a 64-bit immediate load needs an r register", head.start("dst"))
        imm = _in_range(sub, m, "imm", INT64_MIN, UINT64_MAX, "value")
        self.emit(line, LDDW, dst, 0, 0, signed64(imm))

    def _rhs_reg(self, line: _Line, head: Match[str], sub: _Line, m: Match[str], dst: int, is32: bool) -> None:
        src, src32 = _register(sub, m, "src")
        if src32 is not is32:
            raise sub.error("mixes r and w registers", m.start("src"))
        self.emit(line, (BPF_ALU if is32 else BPF_ALU64) | BPF_MOV | BPF_X, dst, src, 0, 0)

    def _rhs_imm(self, line: _Line, head: Match[str], sub: _Line, m: Match[str], dst: int, is32: bool) -> None:
        high = UINT32_MAX if is32 else INT32_MAX
        imm = _signed32(_in_range(sub, m, "imm", INT32_MIN, high, "immediate"))
        self.emit(line, (BPF_ALU if is32 else BPF_ALU64) | BPF_MOV, dst, 0, 0, imm)

    _rhs: list[tuple["re.Pattern[str]", Callable[..., None]]] = [
        (_R_LOAD, _rhs_load),
        (_R_SKB, _rhs_skb),
        (_R_FETCH, _rhs_fetch),
        (_R_XCHG, _rhs_xchg),
        (_R_CMPXCHG, _rhs_cmpxchg),
        (_R_NEG, _rhs_neg),
        (_R_MOVSX, _rhs_movsx),
        (_R_SWAP, _rhs_swap),
        (_R_WIDE, _rhs_wide),
        (_R_REG, _rhs_reg),
        (_R_IMM, _rhs_imm),
    ]


# Comment openers and whole /* */ comments, found left to right in one pass: whichever
# opener comes first decides (a # inside /* */ is comment text, as is /* after #). The lazy
# .*? ends at the first */, so each character is looked at a bounded number of times.
_COMMENT = re.compile(r"/\*.*?\*/|/\*|#|//")
# What a statement may hold: printable ASCII and tabs. Anything else (another script's
# digits, a no-break space, a control character) is reported, never echoed raw.
_NOT_STATEMENT_TEXT = re.compile(r"[^\t\x20-\x7e]")


def _strip_comments(line: str, number: int) -> str:
    """The line without comments, same length up to where the comment began (columns stay).

    Linear in the line's length however many comments it holds. What is left must be
    printable ASCII (AsmSyntaxError at the first other character).
    """
    pieces = []
    position = 0
    for m in _COMMENT.finditer(line):
        token = m.group()
        if token == "/*":
            raise AsmSyntaxError("unterminated /* comment (comments must close on the same line)", number, m.start() + 1, line)
        pieces.append(line[position : m.start()])
        if token in ("#", "//"):
            position = len(line)
            break
        pieces.append(" " * len(token))
        position = m.end()
    pieces.append(line[position:])
    body = "".join(pieces).rstrip(" \t")
    bad = _NOT_STATEMENT_TEXT.search(body)
    if bad:
        raise AsmSyntaxError(
            f"character U+{ord(bad.group()):04X} is not allowed outside comments "
            "(statements are ASCII: digits 0-9, names A-Z a-z _ . $)",
            number, bad.start() + 1, line,
        )
    return body


def assemble_program(text: str, isa: str = "v4", *, callx: bool = False) -> Program:
    """Assemble ``text`` into a :class:`Program` (sources are ``"line N"``).

    ``callx`` accepts ``callx rN`` (call by register), which RFC 9669 does not define and
    Linux refuses; without it that line is an error.
    """
    if isa not in ISA_LEVELS:
        raise AsmError(f"ISA level must be one of {', '.join(ISA_LEVELS)}, got {isa!r}")
    return _Assembler(text, isa, callx).run()


def assemble(text: str, isa: str = "v4", *, callx: bool = False) -> bytes:
    """Assemble LLVM-syntax BPF text to bytes. Errors are :class:`AsmSyntaxError` (line, column)."""
    return assemble_program(text, isa, callx=callx).encode()
