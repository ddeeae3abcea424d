"""The one error the ELF layer raises: :class:`ElfError`."""

from __future__ import annotations

__all__ = ["ElfError"]


class ElfError(ValueError):
    """The object is not one openat can read or use, said in one line naming the section or symbol.

    Everything :func:`openat.elf.load_spec` rejects raises this (also what
    it found wrong in the object's BTF), never a struct, index or decode
    error.
    """
