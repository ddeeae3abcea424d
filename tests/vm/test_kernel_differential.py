"""The machine against the kernel: random programs the verifier accepts (tests/vm/random_programs.py)
give the same r0 and leave the same bytes in their map under PROG_TEST_RUN and in openat.vm.

As root, for real; skipped only where the kernel refuses ISA v4 (the programs use all of it).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openat.syscalls import features
from openat.syscalls.maps import map_create
from openat.syscalls.programs import prog_load, prog_test_run
from openat.uapi import MapType, ProgType
from openat.vm import ArrayMap, Machine
from tests.support import need_root

from .random_programs import MAP_VALUE_SIZE, build, initial_value, random_spec, specs

ETH_HLEN = 14  # a socket filter's test run starts the skb's data after the Ethernet header


@pytest.fixture(scope="module")
def kernel_v4():
    need_root()
    level, why = features.highest_isa()
    if level != "v4":
        pytest.skip(f"the verifier refuses ISA v4 ({why}); the random programs use all of it")


def run_in_kernel(program, value: bytes, packet: bytes):
    with map_create(MapType.ARRAY, 4, MAP_VALUE_SIZE, 1, name="vm_diff") as out:
        out.update(0, value)
        with prog_load(program.encode({"out": out}), ProgType.SOCKET_FILTER, name="vm_diff") as prog:
            result = prog_test_run(prog, data_in=packet)
        return result.retval, out.lookup(0)


def run_in_vm(program, value: bytes, packet: bytes):
    out = ArrayMap(MAP_VALUE_SIZE, 1, name="out")
    out.update(0, value)
    r0 = Machine(program, maps={"out": out}).run(ctx=bytes(192), mem=packet[ETH_HLEN:])
    return r0, out.lookup(0)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Packets of 64 bytes or more after the Ethernet header hold every ld_abs of the generator but
# the few it draws past 64 on purpose (those end the program with r0 = 0 in both).
@given(spec=specs(), packet=st.binary(min_size=ETH_HLEN + 64, max_size=ETH_HLEN + 80), seed=st.integers(0, 255))
def test_random_programs_match_the_kernel(kernel_v4, spec, packet, seed):
    program = build(*spec)
    value = initial_value(seed)
    kernel_r0, kernel_value = run_in_kernel(program, value, packet)
    vm_r0, vm_value = run_in_vm(program, value, packet)
    assert vm_value == kernel_value, program.listing()
    assert vm_r0 & 0xFFFFFFFF == kernel_r0, program.listing()  # the kernel reports r0's low half


def test_the_generator_reaches_every_kind():
    """The differential is only as good as what it draws: every kind of body instruction occurs."""
    rng = random.Random(15)
    seen = {item[0] for _ in range(100) for item in random_spec(rng)[2]}
    assert seen == {"alu", "load", "signed_load", "store", "store_imm", "atomic", "jump", "neg", "movsx",
                    "swap", "lddw", "goto0", "ldabs", "ldind"}
