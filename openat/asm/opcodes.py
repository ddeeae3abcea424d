"""Opcode constants (RFC 9669 names) and the table of every valid opcode byte.

The opcode byte is split three ways depending on its class (low 3 bits):

* ALU, ALU64, JMP, JMP32: ``op (4 bits) | source (1 bit) | class (3 bits)``
* LD, LDX, ST, STX:       ``mode (3 bits) | size (2 bits) | class (3 bits)``

:data:`FORMS` maps each opcode byte that RFC 9669 defines to a :class:`Form` describing how
the other fields are used; the encoder, decoder, disassembler and ISA-level check all read it,
so the knowledge lives in one place.
"""

from __future__ import annotations

from typing import Final

from ..fieldtuple import FieldTuple

# Instruction classes (opcode & 0x07).
BPF_LD: Final = 0x00
BPF_LDX: Final = 0x01
BPF_ST: Final = 0x02
BPF_STX: Final = 0x03
BPF_ALU: Final = 0x04
BPF_JMP: Final = 0x05
BPF_JMP32: Final = 0x06
BPF_ALU64: Final = 0x07

# Source operand (ALU/JMP): immediate or register.
BPF_K: Final = 0x00
BPF_X: Final = 0x08

# Arithmetic operations (opcode & 0xf0).
BPF_ADD: Final = 0x00
BPF_SUB: Final = 0x10
BPF_MUL: Final = 0x20
BPF_DIV: Final = 0x30
BPF_OR: Final = 0x40
BPF_AND: Final = 0x50
BPF_LSH: Final = 0x60
BPF_RSH: Final = 0x70
BPF_NEG: Final = 0x80
BPF_MOD: Final = 0x90
BPF_XOR: Final = 0xA0
BPF_MOV: Final = 0xB0
BPF_ARSH: Final = 0xC0
BPF_END: Final = 0xD0

# Byte-swap direction (the source bit of BPF_END in the ALU class).
BPF_TO_LE: Final = 0x00
BPF_TO_BE: Final = 0x08

# Jump operations (opcode & 0xf0).
BPF_JA: Final = 0x00
BPF_JEQ: Final = 0x10
BPF_JGT: Final = 0x20
BPF_JGE: Final = 0x30
BPF_JSET: Final = 0x40
BPF_JNE: Final = 0x50
BPF_JSGT: Final = 0x60
BPF_JSGE: Final = 0x70
BPF_CALL: Final = 0x80
BPF_EXIT: Final = 0x90
BPF_JLT: Final = 0xA0
BPF_JLE: Final = 0xB0
BPF_JSLT: Final = 0xC0
BPF_JSLE: Final = 0xD0

# Load/store sizes (opcode & 0x18).
BPF_W: Final = 0x00
BPF_H: Final = 0x08
BPF_B: Final = 0x10
BPF_DW: Final = 0x18

# Load/store modes (opcode & 0xe0).
BPF_IMM: Final = 0x00
BPF_ABS: Final = 0x20
BPF_IND: Final = 0x40
BPF_MEM: Final = 0x60
BPF_MEMSX: Final = 0x80
BPF_ATOMIC: Final = 0xC0

# Atomic operations (imm field of BPF_STX | BPF_ATOMIC).
BPF_FETCH: Final = 0x01
BPF_XCHG: Final = 0xE0 | BPF_FETCH
BPF_CMPXCHG: Final = 0xF0 | BPF_FETCH

# src field of the 64-bit immediate load (``lddw``).
BPF_PSEUDO_MAP_FD: Final = 1
BPF_PSEUDO_MAP_VALUE: Final = 2
BPF_PSEUDO_BTF_ID: Final = 3
BPF_PSEUDO_FUNC: Final = 4
BPF_PSEUDO_MAP_IDX: Final = 5
BPF_PSEUDO_MAP_IDX_VALUE: Final = 6

# src field of BPF_CALL.
BPF_PSEUDO_CALL: Final = 1
BPF_PSEUDO_KFUNC_CALL: Final = 2

#: Names of the lddw pseudo sources, by src value (0 is a plain 64-bit constant).
PSEUDO_SOURCE_NAMES: Final[dict[int, str]] = {
    0: "imm64",
    BPF_PSEUDO_MAP_FD: "map_fd",
    BPF_PSEUDO_MAP_VALUE: "map_value",
    BPF_PSEUDO_BTF_ID: "btf_id",
    BPF_PSEUDO_FUNC: "func",
    BPF_PSEUDO_MAP_IDX: "map_idx",
    BPF_PSEUDO_MAP_IDX_VALUE: "map_idx_value",
}

#: Atomic imm values → (DSL name, 32/64-bit level). Plain add predates the others (old XADD).
ATOMIC_OPS: Final[dict[int, str]] = {
    BPF_ADD: "add",
    BPF_OR: "or",
    BPF_AND: "and",
    BPF_XOR: "xor",
    BPF_ADD | BPF_FETCH: "fetch_add",
    BPF_OR | BPF_FETCH: "fetch_or",
    BPF_AND | BPF_FETCH: "fetch_and",
    BPF_XOR | BPF_FETCH: "fetch_xor",
    BPF_XCHG: "xchg",
    BPF_CMPXCHG: "cmpxchg",
}

#: Bytes per access, by size bits.
SIZE_BYTES: Final[dict[int, int]] = {BPF_B: 1, BPF_H: 2, BPF_W: 4, BPF_DW: 8}
#: DSL/mnemonic suffix by size bits.
SIZE_SUFFIX: Final[dict[int, str]] = {BPF_B: "b", BPF_H: "h", BPF_W: "w", BPF_DW: "dw"}

#: ISA levels by name; a program targets one, instructions need one.
ISA_LEVELS: Final[dict[str, int]] = {"v1": 1, "v2": 2, "v3": 3, "v4": 4}

ALU_OP_NAMES: Final[dict[int, str]] = {
    BPF_ADD: "add", BPF_SUB: "sub", BPF_MUL: "mul", BPF_DIV: "div", BPF_OR: "or",
    BPF_AND: "and", BPF_LSH: "lsh", BPF_RSH: "rsh", BPF_NEG: "neg", BPF_MOD: "mod",
    BPF_XOR: "xor", BPF_MOV: "mov", BPF_ARSH: "arsh", BPF_END: "end",
}
#: LLVM's compound-assignment operator for each binary ALU op.
ALU_OP_SYMBOLS: Final[dict[int, str]] = {
    BPF_ADD: "+=", BPF_SUB: "-=", BPF_MUL: "*=", BPF_DIV: "/=", BPF_OR: "|=", BPF_AND: "&=",
    BPF_LSH: "<<=", BPF_RSH: ">>=", BPF_MOD: "%=", BPF_XOR: "^=", BPF_ARSH: "s>>=",
}
JMP_OP_NAMES: Final[dict[int, str]] = {
    BPF_JEQ: "jeq", BPF_JGT: "jgt", BPF_JGE: "jge", BPF_JSET: "jset", BPF_JNE: "jne",
    BPF_JSGT: "jsgt", BPF_JSGE: "jsge", BPF_JLT: "jlt", BPF_JLE: "jle", BPF_JSLT: "jslt",
    BPF_JSLE: "jsle",
}
#: LLVM's comparison operator for each conditional jump.
JMP_OP_SYMBOLS: Final[dict[int, str]] = {
    BPF_JEQ: "==", BPF_JGT: ">", BPF_JGE: ">=", BPF_JSET: "&", BPF_JNE: "!=",
    BPF_JSGT: "s>", BPF_JSGE: "s>=", BPF_JLT: "<", BPF_JLE: "<=", BPF_JSLT: "s<",
    BPF_JSLE: "s<=",
}


class Form(FieldTuple):
    """How one opcode byte uses the instruction's other fields.

    ``kind`` is one of: alu, neg, mov, end, jcond, ja, gotol, call, exit, ldx, ldxs, st, stx,
    atomic, lddw, ldabs, ldind (and callx, an opt-in extension). ``op`` is the operation bits (ALU/JMP) and ``size`` the access
    width in bytes (memory forms); ``is32`` marks 32-bit ALU/JMP32 and 32-bit memory accesses.
    ``level`` is the ISA level the opcode itself needs (operands may raise it, see
    :func:`openat.asm.instruction.required_level`).
    """

    kind: str
    op: int
    uses_reg_source: bool
    is32: bool
    size: int
    level: int


def _build_forms() -> dict[int, Form]:
    forms: dict[int, Form] = {}
    for cls, is32 in ((BPF_ALU, True), (BPF_ALU64, False)):
        for op in ALU_OP_NAMES:
            for source in (BPF_K, BPF_X):
                code = cls | op | source
                is_x = source == BPF_X
                if op == BPF_NEG:
                    if not is_x:
                        forms[code] = Form("neg", op, False, is32, 0, 1)
                elif op == BPF_END:
                    # ALU class: K = to little endian, X = to big endian; ALU64|K = bswap (v4).
                    if is32:
                        forms[code] = Form("end", op, False, True, 0, 1)
                    elif not is_x:
                        forms[code] = Form("end", op, False, False, 0, 4)
                elif op == BPF_MOV:
                    forms[code] = Form("mov", op, is_x, is32, 0, 1)
                else:
                    forms[code] = Form("alu", op, is_x, is32, 0, 1)
    for cls, is32 in ((BPF_JMP, False), (BPF_JMP32, True)):
        base_level = 3 if is32 else 1
        for op in JMP_OP_NAMES:
            new_compare = op in (BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE)
            level = max(base_level, 2 if new_compare else 1)
            forms[cls | op | BPF_K] = Form("jcond", op, False, is32, 0, level)
            forms[cls | op | BPF_X] = Form("jcond", op, True, is32, 0, level)
    forms[BPF_JMP | BPF_JA] = Form("ja", BPF_JA, False, False, 0, 1)
    forms[BPF_JMP32 | BPF_JA] = Form("gotol", BPF_JA, False, True, 0, 4)
    forms[BPF_JMP | BPF_CALL] = Form("call", BPF_CALL, False, False, 0, 1)
    forms[BPF_JMP | BPF_EXIT] = Form("exit", BPF_EXIT, False, False, 0, 1)
    for size_bits, nbytes in SIZE_BYTES.items():
        is32 = nbytes < 8
        forms[BPF_LDX | BPF_MEM | size_bits] = Form("ldx", BPF_MEM, True, is32, nbytes, 1)
        forms[BPF_ST | BPF_MEM | size_bits] = Form("st", BPF_MEM, False, is32, nbytes, 1)
        forms[BPF_STX | BPF_MEM | size_bits] = Form("stx", BPF_MEM, True, is32, nbytes, 1)
        if nbytes < 8:
            forms[BPF_LDX | BPF_MEMSX | size_bits] = Form("ldxs", BPF_MEMSX, True, False, nbytes, 4)
            forms[BPF_LD | BPF_ABS | size_bits] = Form("ldabs", BPF_ABS, False, False, nbytes, 1)
            forms[BPF_LD | BPF_IND | size_bits] = Form("ldind", BPF_IND, True, False, nbytes, 1)
    forms[BPF_STX | BPF_ATOMIC | BPF_W] = Form("atomic", BPF_ATOMIC, True, True, 4, 1)
    forms[BPF_STX | BPF_ATOMIC | BPF_DW] = Form("atomic", BPF_ATOMIC, True, False, 8, 1)
    forms[BPF_LD | BPF_IMM | BPF_DW] = Form("lddw", BPF_IMM, False, False, 8, 1)
    return forms


#: Every opcode byte RFC 9669 defines → its :class:`Form`. Anything else is not an instruction.
FORMS: Final[dict[int, Form]] = _build_forms()

#: Opcode of the 64-bit immediate load, the only 16-byte instruction.
LDDW: Final = BPF_LD | BPF_IMM | BPF_DW

#: ``callx rN``: call the function whose address (or, for some runtimes, helper id) is in
#: register dst. LLVM emits it; RFC 9669 does not define it and Linux refuses it, so only
#: opt-ins accept it (``Program(callx=True)``, ``assemble(..., callx=True)``,
#: ``decode(..., callx=True)``).
BPF_CALLX: Final = BPF_JMP | BPF_CALL | BPF_X

#: Forms of the opt-in extensions, kept apart from :data:`FORMS` so that by default they stay
#: unknown opcodes.
EXTENSION_FORMS: Final[dict[int, Form]] = {BPF_CALLX: Form("callx", BPF_CALL, False, False, 0, 1)}

#: :data:`FORMS` and :data:`EXTENSION_FORMS`: what code that meets an already accepted
#: instruction (formatting, ISA level) looks its form up in.
ALL_FORMS: Final[dict[int, Form]] = {**FORMS, **EXTENSION_FORMS}
