"""Golden encodings: one DSL call per opcode and pseudo form → exact bytes and LLVM text.

The expected bytes were checked against llvm-mc-19 when the table was written (except the
forms LLVM 19 cannot spell: pc-relative and kfunc calls, ld_pseudo with upper bits,
skb[rN + K], gotol beyond 16 bits); test_llvm_differential.py keeps checking that.
"""

from __future__ import annotations

import pytest

from openat.asm import (  # noqa: F401  (rows refer to these names)
    R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10,
    W0, W1, W2, W3, W4, W5, W6, W7, W8, W9, W10,
    Program, assemble, decode, disassemble,
)
from openat.asm.opcodes import FORMS

GOLDEN: list[tuple[str, str, str]] = [
    ('p.add(R1, -8)', '07 01 00 00 f8 ff ff ff', 'r1 += -0x8'),
    ('p.add(R1, R2)', '0f 21 00 00 00 00 00 00', 'r1 += r2'),
    ('p.sub(R1, 2147483647)', '17 01 00 00 ff ff ff 7f', 'r1 -= 0x7fffffff'),
    ('p.sub(R1, R2)', '1f 21 00 00 00 00 00 00', 'r1 -= r2'),
    ('p.mul(R1, 3)', '27 01 00 00 03 00 00 00', 'r1 *= 0x3'),
    ('p.mul(R1, R2)', '2f 21 00 00 00 00 00 00', 'r1 *= r2'),
    ('p.div(R1, 10)', '37 01 00 00 0a 00 00 00', 'r1 /= 0xa'),
    ('p.div(R1, R2)', '3f 21 00 00 00 00 00 00', 'r1 /= r2'),
    ('p.mod(R1, 7)', '97 01 00 00 07 00 00 00', 'r1 %= 0x7'),
    ('p.mod(R1, R2)', '9f 21 00 00 00 00 00 00', 'r1 %= r2'),
    ('p.or_(R1, 16)', '47 01 00 00 10 00 00 00', 'r1 |= 0x10'),
    ('p.or_(R1, R2)', '4f 21 00 00 00 00 00 00', 'r1 |= r2'),
    ('p.and_(R1, -2147483648)', '57 01 00 00 00 00 00 80', 'r1 &= -0x80000000'),
    ('p.and_(R1, R2)', '5f 21 00 00 00 00 00 00', 'r1 &= r2'),
    ('p.xor(R1, 1)', 'a7 01 00 00 01 00 00 00', 'r1 ^= 0x1'),
    ('p.xor(R1, R2)', 'af 21 00 00 00 00 00 00', 'r1 ^= r2'),
    ('p.lsh(R1, 63)', '67 01 00 00 3f 00 00 00', 'r1 <<= 0x3f'),
    ('p.lsh(R1, R2)', '6f 21 00 00 00 00 00 00', 'r1 <<= r2'),
    ('p.rsh(R1, 1)', '77 01 00 00 01 00 00 00', 'r1 >>= 0x1'),
    ('p.rsh(R1, R2)', '7f 21 00 00 00 00 00 00', 'r1 >>= r2'),
    ('p.arsh(R1, 2)', 'c7 01 00 00 02 00 00 00', 'r1 s>>= 0x2'),
    ('p.arsh(R1, R2)', 'cf 21 00 00 00 00 00 00', 'r1 s>>= r2'),
    ('p.mov(R1, -1)', 'b7 01 00 00 ff ff ff ff', 'r1 = -0x1'),
    ('p.mov(R1, R2)', 'bf 21 00 00 00 00 00 00', 'r1 = r2'),
    ('p.sdiv(R1, 3)', '37 01 01 00 03 00 00 00', 'r1 s/= 0x3'),
    ('p.sdiv(R1, R2)', '3f 21 01 00 00 00 00 00', 'r1 s/= r2'),
    ('p.smod(R1, -3)', '97 01 01 00 fd ff ff ff', 'r1 s%= -0x3'),
    ('p.smod(R1, R2)', '9f 21 01 00 00 00 00 00', 'r1 s%= r2'),
    ('p.neg(R3)', '87 03 00 00 00 00 00 00', 'r3 = -r3'),
    ('p.movsx(R4, R5, 8)', 'bf 54 08 00 00 00 00 00', 'r4 = (s8)r5'),
    ('p.movsx(R4, R5, 16)', 'bf 54 10 00 00 00 00 00', 'r4 = (s16)r5'),
    ('p.movsx(R4, R5, 32)', 'bf 54 20 00 00 00 00 00', 'r4 = (s32)r5'),
    ('p.add(W1, -8)', '04 01 00 00 f8 ff ff ff', 'w1 += -0x8'),
    ('p.add(W1, W2)', '0c 21 00 00 00 00 00 00', 'w1 += w2'),
    ('p.sub(W1, 2147483647)', '14 01 00 00 ff ff ff 7f', 'w1 -= 0x7fffffff'),
    ('p.sub(W1, W2)', '1c 21 00 00 00 00 00 00', 'w1 -= w2'),
    ('p.mul(W1, 3)', '24 01 00 00 03 00 00 00', 'w1 *= 0x3'),
    ('p.mul(W1, W2)', '2c 21 00 00 00 00 00 00', 'w1 *= w2'),
    ('p.div(W1, 10)', '34 01 00 00 0a 00 00 00', 'w1 /= 0xa'),
    ('p.div(W1, W2)', '3c 21 00 00 00 00 00 00', 'w1 /= w2'),
    ('p.mod(W1, 7)', '94 01 00 00 07 00 00 00', 'w1 %= 0x7'),
    ('p.mod(W1, W2)', '9c 21 00 00 00 00 00 00', 'w1 %= w2'),
    ('p.or_(W1, 16)', '44 01 00 00 10 00 00 00', 'w1 |= 0x10'),
    ('p.or_(W1, W2)', '4c 21 00 00 00 00 00 00', 'w1 |= w2'),
    ('p.and_(W1, -2147483648)', '54 01 00 00 00 00 00 80', 'w1 &= -0x80000000'),
    ('p.and_(W1, W2)', '5c 21 00 00 00 00 00 00', 'w1 &= w2'),
    ('p.xor(W1, 1)', 'a4 01 00 00 01 00 00 00', 'w1 ^= 0x1'),
    ('p.xor(W1, W2)', 'ac 21 00 00 00 00 00 00', 'w1 ^= w2'),
    ('p.lsh(W1, 31)', '64 01 00 00 1f 00 00 00', 'w1 <<= 0x1f'),
    ('p.lsh(W1, W2)', '6c 21 00 00 00 00 00 00', 'w1 <<= w2'),
    ('p.rsh(W1, 1)', '74 01 00 00 01 00 00 00', 'w1 >>= 0x1'),
    ('p.rsh(W1, W2)', '7c 21 00 00 00 00 00 00', 'w1 >>= w2'),
    ('p.arsh(W1, 2)', 'c4 01 00 00 02 00 00 00', 'w1 s>>= 0x2'),
    ('p.arsh(W1, W2)', 'cc 21 00 00 00 00 00 00', 'w1 s>>= w2'),
    ('p.mov(W1, -1)', 'b4 01 00 00 ff ff ff ff', 'w1 = -0x1'),
    ('p.mov(W1, W2)', 'bc 21 00 00 00 00 00 00', 'w1 = w2'),
    ('p.sdiv(W1, 3)', '34 01 01 00 03 00 00 00', 'w1 s/= 0x3'),
    ('p.sdiv(W1, W2)', '3c 21 01 00 00 00 00 00', 'w1 s/= w2'),
    ('p.smod(W1, -3)', '94 01 01 00 fd ff ff ff', 'w1 s%= -0x3'),
    ('p.smod(W1, W2)', '9c 21 01 00 00 00 00 00', 'w1 s%= w2'),
    ('p.neg(W3)', '84 03 00 00 00 00 00 00', 'w3 = -w3'),
    ('p.movsx(W4, W5, 8)', 'bc 54 08 00 00 00 00 00', 'w4 = (s8)w5'),
    ('p.movsx(W4, W5, 16)', 'bc 54 10 00 00 00 00 00', 'w4 = (s16)w5'),
    ('p.mov(W1, 0xffffffff)', 'b4 01 00 00 ff ff ff ff', 'w1 = -0x1'),
    ('p.le(R1, 16)', 'd4 01 00 00 10 00 00 00', 'r1 = le16 r1'),
    ('p.be(R1, 16)', 'dc 01 00 00 10 00 00 00', 'r1 = be16 r1'),
    ('p.bswap(R1, 16)', 'd7 01 00 00 10 00 00 00', 'r1 = bswap16 r1'),
    ('p.le(R1, 32)', 'd4 01 00 00 20 00 00 00', 'r1 = le32 r1'),
    ('p.be(R1, 32)', 'dc 01 00 00 20 00 00 00', 'r1 = be32 r1'),
    ('p.bswap(R1, 32)', 'd7 01 00 00 20 00 00 00', 'r1 = bswap32 r1'),
    ('p.le(R1, 64)', 'd4 01 00 00 40 00 00 00', 'r1 = le64 r1'),
    ('p.be(R1, 64)', 'dc 01 00 00 40 00 00 00', 'r1 = be64 r1'),
    ('p.bswap(R1, 64)', 'd7 01 00 00 40 00 00 00', 'r1 = bswap64 r1'),
    ('p.jeq(R1, -5, 2)', '15 01 02 00 fb ff ff ff', 'if r1 == -0x5 goto +0x2'),
    ('p.jeq(R1, R2, -3)', '1d 21 fd ff 00 00 00 00', 'if r1 == r2 goto -0x3'),
    ('p.jne(R1, -5, 2)', '55 01 02 00 fb ff ff ff', 'if r1 != -0x5 goto +0x2'),
    ('p.jne(R1, R2, -3)', '5d 21 fd ff 00 00 00 00', 'if r1 != r2 goto -0x3'),
    ('p.jgt(R1, -5, 2)', '25 01 02 00 fb ff ff ff', 'if r1 > -0x5 goto +0x2'),
    ('p.jgt(R1, R2, -3)', '2d 21 fd ff 00 00 00 00', 'if r1 > r2 goto -0x3'),
    ('p.jge(R1, -5, 2)', '35 01 02 00 fb ff ff ff', 'if r1 >= -0x5 goto +0x2'),
    ('p.jge(R1, R2, -3)', '3d 21 fd ff 00 00 00 00', 'if r1 >= r2 goto -0x3'),
    ('p.jlt(R1, -5, 2)', 'a5 01 02 00 fb ff ff ff', 'if r1 < -0x5 goto +0x2'),
    ('p.jlt(R1, R2, -3)', 'ad 21 fd ff 00 00 00 00', 'if r1 < r2 goto -0x3'),
    ('p.jle(R1, -5, 2)', 'b5 01 02 00 fb ff ff ff', 'if r1 <= -0x5 goto +0x2'),
    ('p.jle(R1, R2, -3)', 'bd 21 fd ff 00 00 00 00', 'if r1 <= r2 goto -0x3'),
    ('p.jset(R1, -5, 2)', '45 01 02 00 fb ff ff ff', 'if r1 & -0x5 goto +0x2'),
    ('p.jset(R1, R2, -3)', '4d 21 fd ff 00 00 00 00', 'if r1 & r2 goto -0x3'),
    ('p.jsgt(R1, -5, 2)', '65 01 02 00 fb ff ff ff', 'if r1 s> -0x5 goto +0x2'),
    ('p.jsgt(R1, R2, -3)', '6d 21 fd ff 00 00 00 00', 'if r1 s> r2 goto -0x3'),
    ('p.jsge(R1, -5, 2)', '75 01 02 00 fb ff ff ff', 'if r1 s>= -0x5 goto +0x2'),
    ('p.jsge(R1, R2, -3)', '7d 21 fd ff 00 00 00 00', 'if r1 s>= r2 goto -0x3'),
    ('p.jslt(R1, -5, 2)', 'c5 01 02 00 fb ff ff ff', 'if r1 s< -0x5 goto +0x2'),
    ('p.jslt(R1, R2, -3)', 'cd 21 fd ff 00 00 00 00', 'if r1 s< r2 goto -0x3'),
    ('p.jsle(R1, -5, 2)', 'd5 01 02 00 fb ff ff ff', 'if r1 s<= -0x5 goto +0x2'),
    ('p.jsle(R1, R2, -3)', 'dd 21 fd ff 00 00 00 00', 'if r1 s<= r2 goto -0x3'),
    ('p.jeq(W1, -5, 2)', '16 01 02 00 fb ff ff ff', 'if w1 == -0x5 goto +0x2'),
    ('p.jeq(W1, W2, -3)', '1e 21 fd ff 00 00 00 00', 'if w1 == w2 goto -0x3'),
    ('p.jne(W1, -5, 2)', '56 01 02 00 fb ff ff ff', 'if w1 != -0x5 goto +0x2'),
    ('p.jne(W1, W2, -3)', '5e 21 fd ff 00 00 00 00', 'if w1 != w2 goto -0x3'),
    ('p.jgt(W1, -5, 2)', '26 01 02 00 fb ff ff ff', 'if w1 > -0x5 goto +0x2'),
    ('p.jgt(W1, W2, -3)', '2e 21 fd ff 00 00 00 00', 'if w1 > w2 goto -0x3'),
    ('p.jge(W1, -5, 2)', '36 01 02 00 fb ff ff ff', 'if w1 >= -0x5 goto +0x2'),
    ('p.jge(W1, W2, -3)', '3e 21 fd ff 00 00 00 00', 'if w1 >= w2 goto -0x3'),
    ('p.jlt(W1, -5, 2)', 'a6 01 02 00 fb ff ff ff', 'if w1 < -0x5 goto +0x2'),
    ('p.jlt(W1, W2, -3)', 'ae 21 fd ff 00 00 00 00', 'if w1 < w2 goto -0x3'),
    ('p.jle(W1, -5, 2)', 'b6 01 02 00 fb ff ff ff', 'if w1 <= -0x5 goto +0x2'),
    ('p.jle(W1, W2, -3)', 'be 21 fd ff 00 00 00 00', 'if w1 <= w2 goto -0x3'),
    ('p.jset(W1, -5, 2)', '46 01 02 00 fb ff ff ff', 'if w1 & -0x5 goto +0x2'),
    ('p.jset(W1, W2, -3)', '4e 21 fd ff 00 00 00 00', 'if w1 & w2 goto -0x3'),
    ('p.jsgt(W1, -5, 2)', '66 01 02 00 fb ff ff ff', 'if w1 s> -0x5 goto +0x2'),
    ('p.jsgt(W1, W2, -3)', '6e 21 fd ff 00 00 00 00', 'if w1 s> w2 goto -0x3'),
    ('p.jsge(W1, -5, 2)', '76 01 02 00 fb ff ff ff', 'if w1 s>= -0x5 goto +0x2'),
    ('p.jsge(W1, W2, -3)', '7e 21 fd ff 00 00 00 00', 'if w1 s>= w2 goto -0x3'),
    ('p.jslt(W1, -5, 2)', 'c6 01 02 00 fb ff ff ff', 'if w1 s< -0x5 goto +0x2'),
    ('p.jslt(W1, W2, -3)', 'ce 21 fd ff 00 00 00 00', 'if w1 s< w2 goto -0x3'),
    ('p.jsle(W1, -5, 2)', 'd6 01 02 00 fb ff ff ff', 'if w1 s<= -0x5 goto +0x2'),
    ('p.jsle(W1, W2, -3)', 'de 21 fd ff 00 00 00 00', 'if w1 s<= w2 goto -0x3'),
    ('p.jgt(W1, 0xffffffff, 0x7fff)', '26 01 ff 7f ff ff ff ff', 'if w1 > -0x1 goto +0x7fff'),
    ('p.ja(-32768)', '05 00 00 80 00 00 00 00', 'goto -0x8000'),
    ('p.ja(1)', '05 00 01 00 00 00 00 00', 'goto +0x1'),
    ('p.gotol(70000)', '06 00 00 00 70 11 01 00', 'gotol +0x11170'),
    ('p.gotol(-1)', '06 00 00 00 ff ff ff ff', 'gotol -0x1'),
    ("p.call('map_lookup_elem')", '85 00 00 00 01 00 00 00', 'call 0x1'),
    ("p.call('bpf_ringbuf_output')", '85 00 00 00 82 00 00 00', 'call 0x82'),
    ('p.call(211)', '85 00 00 00 d3 00 00 00', 'call 0xd3'),
    ("p.call_label('t'); p.label('t')", '85 10 00 00 00 00 00 00', 'call pc+0x0'),
    ('p.call_kfunc(0x1234)', '85 20 00 00 34 12 00 00', 'call kfunc 0x1234'),
    ('p.exit()', '95 00 00 00 00 00 00 00', 'exit'),
    ('p.ldxb(R1, R10, -8)', '71 a1 f8 ff 00 00 00 00', 'w1 = *(u8 *)(r10 - 0x8)'),
    ('p.stb(R10, 0x7fff, -1)', '72 0a ff 7f ff ff ff ff', '*(u8 *)(r10 + 0x7fff) = -0x1'),
    ('p.stxb(R10, -32768, R9)', '73 9a 00 80 00 00 00 00', '*(u8 *)(r10 - 0x8000) = w9'),
    ('p.ldxh(R1, R10, -8)', '69 a1 f8 ff 00 00 00 00', 'w1 = *(u16 *)(r10 - 0x8)'),
    ('p.sth(R10, 0x7fff, -1)', '6a 0a ff 7f ff ff ff ff', '*(u16 *)(r10 + 0x7fff) = -0x1'),
    ('p.stxh(R10, -32768, R9)', '6b 9a 00 80 00 00 00 00', '*(u16 *)(r10 - 0x8000) = w9'),
    ('p.ldxw(R1, R10, -8)', '61 a1 f8 ff 00 00 00 00', 'w1 = *(u32 *)(r10 - 0x8)'),
    ('p.stw(R10, 0x7fff, -1)', '62 0a ff 7f ff ff ff ff', '*(u32 *)(r10 + 0x7fff) = -0x1'),
    ('p.stxw(R10, -32768, R9)', '63 9a 00 80 00 00 00 00', '*(u32 *)(r10 - 0x8000) = w9'),
    ('p.ldxdw(R1, R10, -8)', '79 a1 f8 ff 00 00 00 00', 'r1 = *(u64 *)(r10 - 0x8)'),
    ('p.stdw(R10, 0x7fff, -0x80000000)', '7a 0a ff 7f 00 00 00 80', '*(u64 *)(r10 + 0x7fff) = -0x80000000'),
    ('p.stxdw(R10, -32768, R9)', '7b 9a 00 80 00 00 00 00', '*(u64 *)(r10 - 0x8000) = r9'),
    ('p.ldxsb(R2, R3, 4)', '91 32 04 00 00 00 00 00', 'r2 = *(s8 *)(r3 + 0x4)'),
    ('p.ldxsh(R2, R3, 4)', '89 32 04 00 00 00 00 00', 'r2 = *(s16 *)(r3 + 0x4)'),
    ('p.ldxsw(R2, R3, 4)', '81 32 04 00 00 00 00 00', 'r2 = *(s32 *)(r3 + 0x4)'),
    ('p.ldxw(W1, R6, 8)', '61 61 08 00 00 00 00 00', 'w1 = *(u32 *)(r6 + 0x8)'),
    ('p.stxw(R1, 4, W2)', '63 21 04 00 00 00 00 00', '*(u32 *)(r1 + 0x4) = w2'),
    ('p.stb(R1, 0, 255)', '72 01 00 00 ff 00 00 00', '*(u8 *)(r1 + 0x0) = 0xff'),
    ('p.sth(R1, 0, 0xffff)', '6a 01 00 00 ff ff 00 00', '*(u16 *)(r1 + 0x0) = 0xffff'),
    ('p.stw(R1, 0, 0xffffffff)', '62 01 00 00 ff ff ff ff', '*(u32 *)(r1 + 0x0) = -0x1'),
    ('p.atomic_add(R1, 4, W2)', 'c3 21 04 00 00 00 00 00', 'lock *(u32 *)(r1 + 0x4) += w2'),
    ('p.atomic_or(R1, 4, W2)', 'c3 21 04 00 40 00 00 00', 'lock *(u32 *)(r1 + 0x4) |= w2'),
    ('p.atomic_and(R1, 4, W2)', 'c3 21 04 00 50 00 00 00', 'lock *(u32 *)(r1 + 0x4) &= w2'),
    ('p.atomic_xor(R1, 4, W2)', 'c3 21 04 00 a0 00 00 00', 'lock *(u32 *)(r1 + 0x4) ^= w2'),
    ('p.atomic_fetch_add(R1, 4, W2)', 'c3 21 04 00 01 00 00 00', 'w2 = atomic_fetch_add((u32 *)(r1 + 0x4), w2)'),
    ('p.atomic_fetch_or(R1, 4, W2)', 'c3 21 04 00 41 00 00 00', 'w2 = atomic_fetch_or((u32 *)(r1 + 0x4), w2)'),
    ('p.atomic_fetch_and(R1, 4, W2)', 'c3 21 04 00 51 00 00 00', 'w2 = atomic_fetch_and((u32 *)(r1 + 0x4), w2)'),
    ('p.atomic_fetch_xor(R1, 4, W2)', 'c3 21 04 00 a1 00 00 00', 'w2 = atomic_fetch_xor((u32 *)(r1 + 0x4), w2)'),
    ('p.xchg(R1, 4, W2)', 'c3 21 04 00 e1 00 00 00', 'w2 = xchg32_32(r1 + 0x4, w2)'),
    ('p.cmpxchg(R1, 4, W2)', 'c3 21 04 00 f1 00 00 00', 'w0 = cmpxchg32_32(r1 + 0x4, w0, w2)'),
    ('p.atomic_add(R1, 8, R2)', 'db 21 08 00 00 00 00 00', 'lock *(u64 *)(r1 + 0x8) += r2'),
    ('p.atomic_or(R1, 8, R2)', 'db 21 08 00 40 00 00 00', 'lock *(u64 *)(r1 + 0x8) |= r2'),
    ('p.atomic_and(R1, 8, R2)', 'db 21 08 00 50 00 00 00', 'lock *(u64 *)(r1 + 0x8) &= r2'),
    ('p.atomic_xor(R1, 8, R2)', 'db 21 08 00 a0 00 00 00', 'lock *(u64 *)(r1 + 0x8) ^= r2'),
    ('p.atomic_fetch_add(R1, 8, R2)', 'db 21 08 00 01 00 00 00', 'r2 = atomic_fetch_add((u64 *)(r1 + 0x8), r2)'),
    ('p.atomic_fetch_or(R1, 8, R2)', 'db 21 08 00 41 00 00 00', 'r2 = atomic_fetch_or((u64 *)(r1 + 0x8), r2)'),
    ('p.atomic_fetch_and(R1, 8, R2)', 'db 21 08 00 51 00 00 00', 'r2 = atomic_fetch_and((u64 *)(r1 + 0x8), r2)'),
    ('p.atomic_fetch_xor(R1, 8, R2)', 'db 21 08 00 a1 00 00 00', 'r2 = atomic_fetch_xor((u64 *)(r1 + 0x8), r2)'),
    ('p.xchg(R1, 8, R2)', 'db 21 08 00 e1 00 00 00', 'r2 = xchg_64(r1 + 0x8, r2)'),
    ('p.cmpxchg(R1, 8, R2)', 'db 21 08 00 f1 00 00 00', 'r0 = cmpxchg_64(r1 + 0x8, r0, r2)'),
    ('p.atomic_add(R1, -8, R3, fetch=True)', 'db 31 f8 ff 01 00 00 00', 'r3 = atomic_fetch_add((u64 *)(r1 - 0x8), r3)'),
    ('p.lddw(R1, 0x1122334455667788)', '18 01 00 00 88 77 66 55 00 00 00 00 44 33 22 11', 'r1 = 0x1122334455667788 ll'),
    ('p.lddw(R9, -1)', '18 09 00 00 ff ff ff ff 00 00 00 00 ff ff ff ff', 'r9 = -0x1 ll'),
    ('p.lddw(R0, 0xffffffffffffffff)', '18 00 00 00 ff ff ff ff 00 00 00 00 ff ff ff ff', 'r0 = -0x1 ll'),
    ('p.lddw(R2, -0x8000000000000000)', '18 02 00 00 00 00 00 00 00 00 00 00 00 00 00 80', 'r2 = -0x8000000000000000 ll'),
    ('p.ld_map_fd(R1, 7)', '18 11 00 00 07 00 00 00 00 00 00 00 00 00 00 00', 'ld_pseudo r1, 0x1, 0x7'),
    ('p.ld_map_value(R2, 8, 16)', '18 22 00 00 08 00 00 00 00 00 00 00 10 00 00 00', 'ld_pseudo r2, 0x2, 0x1000000008'),
    ('p.ld_btf_id(R3, 4242)', '18 33 00 00 92 10 00 00 00 00 00 00 00 00 00 00', 'ld_pseudo r3, 0x3, 0x1092'),
    ("p.ld_func(R4, 't'); p.label('t')", '18 44 00 00 01 00 00 00 00 00 00 00 00 00 00 00', 'ld_pseudo r4, 0x4, 0x1'),
    ('p.ld_map_idx(R5, 2)', '18 55 00 00 02 00 00 00 00 00 00 00 00 00 00 00', 'ld_pseudo r5, 0x5, 0x2'),
    ('p.ld_map_idx_value(R6, 3, 24)', '18 66 00 00 03 00 00 00 00 00 00 00 18 00 00 00', 'ld_pseudo r6, 0x6, 0x1800000003'),
    ('p.ld_pseudo(R7, 1, 9)', '18 17 00 00 09 00 00 00 00 00 00 00 00 00 00 00', 'ld_pseudo r7, 0x1, 0x9'),
    ('p.ldabsb(4)', '30 00 00 00 04 00 00 00', 'r0 = *(u8 *)skb[0x4]'),
    ('p.ldabsh(-0x80000000)', '28 00 00 00 00 00 00 80', 'r0 = *(u16 *)skb[-0x80000000]'),
    ('p.ldabsw(0x7fffffff)', '20 00 00 00 ff ff ff 7f', 'r0 = *(u32 *)skb[0x7fffffff]'),
    ('p.ldindb(R1, 0)', '50 10 00 00 00 00 00 00', 'r0 = *(u8 *)skb[r1]'),
    ('p.ldindh(R2, 14)', '48 20 00 00 0e 00 00 00', 'r0 = *(u16 *)skb[r2 + 0xe]'),
    ('p.ldindw(R3, -4)', '40 30 00 00 fc ff ff ff', 'r0 = *(u32 *)skb[r3 - 0x4]'),
]


def _build(row: str) -> Program:
    p = Program(isa="v4")
    exec(row, globals(), {"p": p})
    return p


@pytest.mark.parametrize("row, hex_bytes, text", GOLDEN, ids=[r[0] for r in GOLDEN])
def test_dsl_encodes_to_golden_bytes(row: str, hex_bytes: str, text: str) -> None:
    assert _build(row).encode().hex(" ") == hex_bytes


@pytest.mark.parametrize("row, hex_bytes, text", GOLDEN, ids=[r[0] for r in GOLDEN])
def test_golden_bytes_disassemble_to_golden_text(row: str, hex_bytes: str, text: str) -> None:
    assert disassemble(bytes.fromhex(hex_bytes)).strip() == text


@pytest.mark.parametrize("row, hex_bytes, text", GOLDEN, ids=[r[0] for r in GOLDEN])
def test_golden_text_assembles_to_golden_bytes(row: str, hex_bytes: str, text: str) -> None:
    assert assemble(text).hex(" ") == hex_bytes


def test_golden_table_covers_every_opcode() -> None:
    covered = {decode(bytes.fromhex(h))[0].opcode for _, h, _ in GOLDEN}
    assert covered == set(FORMS)


def test_golden_table_covers_every_pseudo_source_atomic_op_and_call_kind() -> None:
    insns = [decode(bytes.fromhex(h))[0] for _, h, _ in GOLDEN]
    assert {i.src for i in insns if i.opcode == 0x18} == set(range(7))
    assert {i.src for i in insns if i.opcode == 0x85} == {0, 1, 2}
    for opcode in (0xC3, 0xDB):
        assert {i.imm for i in insns if i.opcode == opcode} == {
            0x00, 0x40, 0x50, 0xA0, 0x01, 0x41, 0x51, 0xA1, 0xE1, 0xF1,
        }
