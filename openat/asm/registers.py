"""Register objects for the DSL: ``R0``..``R10`` (64-bit view) and ``W0``..``W10`` (32-bit view).

The width of a register operand selects the instruction class: an ALU operation whose
destination is a ``W`` register is a 32-bit ``BPF_ALU`` instruction, a comparison on a ``W``
register is a ``BPF_JMP32`` instruction. Both views encode to the same 4-bit register number.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "FP", "Register",
    "R0", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10",
    "W0", "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10",
]


class Register:
    """One of the eleven eBPF registers seen at 64 bits (``r``) or 32 bits (``w``)."""

    __slots__ = ("num", "is32", "name")

    num: int
    is32: bool
    name: str

    def __init__(self, num: int, is32: bool) -> None:
        object.__setattr__(self, "num", num)
        object.__setattr__(self, "is32", is32)
        object.__setattr__(self, "name", f"{'w' if is32 else 'r'}{num}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Register is immutable")

    def __repr__(self) -> str:
        return self.name.upper()

    def __str__(self) -> str:
        return self.name

    def __reduce__(self) -> tuple[object, tuple[int, bool]]:
        return (_lookup, (self.num, self.is32))

    @property
    def r(self) -> "Register":
        """The 64-bit view of this register."""
        return R[self.num]

    @property
    def w(self) -> "Register":
        """The 32-bit view of this register."""
        return W[self.num]


def _lookup(num: int, is32: bool) -> Register:
    return (W if is32 else R)[num]


R: Final[tuple[Register, ...]] = tuple(Register(n, False) for n in range(11))
W: Final[tuple[Register, ...]] = tuple(Register(n, True) for n in range(11))

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = R
W0, W1, W2, W3, W4, W5, W6, W7, W8, W9, W10 = W

#: The frame pointer (read-only, points at the top of the 512-byte stack).
FP: Final[Register] = R10
