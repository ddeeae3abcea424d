"""The :class:`Machine`: an eBPF interpreter with RFC 9669's semantics, in pure Python.

>>> from openat.asm import Program, R0
>>> p = Program(isa="v4")
>>> p.mov(R0, 6)
>>> p.mul(R0, 7)
>>> p.exit()
>>> Machine(p).run()
42

A machine is made once per program (decoding and compiling every instruction, see
:mod:`openat.vm.ops`) and then runs it as often as wanted; each run starts from fresh
registers and stacks, with the maps keeping what earlier runs stored, as in the kernel.
"""

from __future__ import annotations

import difflib
import random
import struct
import time
from itertools import repeat
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..asm.errors import DecodeError
from ..asm.formatter import format_instruction
from ..asm.helper_ids import HELPER_IDS, HELPER_NAMES
from ..asm.instruction import Instruction, encode, iter_decode, required_level
from ..asm.opcodes import (
    BPF_PSEUDO_BTF_ID,
    BPF_PSEUDO_FUNC,
    BPF_PSEUDO_MAP_FD,
    BPF_PSEUDO_MAP_IDX,
    BPF_PSEUDO_MAP_IDX_VALUE,
    BPF_PSEUDO_MAP_VALUE,
    ISA_LEVELS,
)
from ..asm.program import Program
from ..fieldtuple import FieldTuple
from .errors import VmError
from .helpers import BUILTIN_HELPERS, Helper
from .maps import ArrayMap, PerCpuArrayMap, RingBufMap, VmMap
from .memory import (
    CODE_BASE,
    CTX_WINDOW,
    MAP_HANDLE_BASE,
    MAX_FRAMES,
    PACKET_WINDOW,
    STACK_SIZE,
    STACK_WINDOW,
    Memory,
    MemoryFault,
    Region,
)
from .ops import Exit, compile_program

__all__ = ["CurrentTask", "DEFAULT_BUDGET", "Machine"]

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
#: Instructions a run may execute before it is stopped (the verifier's complexity limit).
DEFAULT_BUDGET = 1_000_000
_FIRST_MAP_FD = 3  # the fds a Program's named maps get in the machine's copy of its code
_MAP_HANDLE_STEP = 0x100

ProgramInput = Union[Program, bytes, bytearray, memoryview, Sequence[Instruction]]
MapsInput = Union[Mapping[Union[str, int], VmMap], Sequence[VmMap], None]


class CurrentTask(FieldTuple):
    """The task the helpers report as current: ``get_current_pid_tgid`` is ``pid << 32 | tid``,
    ``get_current_uid_gid`` is ``gid << 32 | uid``; ``task_struct`` is the address of a
    region holding one (what ``get_current_task[_btf]`` returns; 0: none)."""

    pid: int = 1000
    tid: int = 1000
    uid: int = 1000
    gid: int = 1000
    comm: bytes = b"openat-vm"
    cgroup_id: int = 1
    task_struct: int = 0


def _signed32(value: int) -> int:
    return value - (1 << 32) if value & (1 << 31) else value


class Machine:
    """An eBPF machine for one program: a :class:`~openat.asm.Program`, raw instruction bytes, or
    a list of :class:`~openat.asm.Instruction`.

    ``isa`` is the highest ISA level it runs ("v4": everything in RFC 9669; the ``callx``
    extension too). ``maps`` gives the maps the program refers to: by name for a Program
    (``{"counter": ArrayMap(8, 1)}``), by fd for bytes (the fd in the ``lddw`` imm), or as a
    list (``ld_map_idx`` indexes it; with a list, named and fd loads take them in order).
    ``budget`` bounds the instructions of a run; ``current``, ``clock`` (a function returning
    nanoseconds, default ``time.monotonic_ns``), ``cpu`` and ``seed`` (of get_prandom_u32)
    are what the helpers report. ``strict_alignment`` makes every access need natural
    alignment (else only the stack's and atomics do, as on x86-64). ``sources`` gives one
    source line per slot for programs whose instructions carry none (bytes from another
    front end), for errors and traces.
    """

    def __init__(
        self, program: ProgramInput, *, isa: str = "v4", maps: MapsInput = None, budget: int = DEFAULT_BUDGET,
        current: CurrentTask = CurrentTask(), clock: Optional[Callable[[], int]] = None, cpu: int = 0,
        seed: Optional[int] = None, strict_alignment: bool = False, sources: Optional[Sequence[str]] = None,
    ) -> None:
        level = ISA_LEVELS.get(isa) if isinstance(isa, str) else None
        if level is None:
            raise VmError(f"Machine(isa={isa!r}): the ISA level must be one of {', '.join(ISA_LEVELS)}")
        self.isa, self.level = isa, level
        self.budget = budget
        self.current = current
        self.clock: Callable[[], int] = clock or time.monotonic_ns
        self.cpu = cpu
        self.random = random.Random(seed)
        self.strict_alignment = strict_alignment
        self.registers: List[int] = [0] * 11
        self.frames: List[Tuple[Any, ...]] = []
        self.memory = Memory()
        self.helpers: Dict[int, Helper] = dict(BUILTIN_HELPERS)
        self.printk: List[str] = []
        self.steps = 0
        self.ctx: Optional[bytearray] = None
        self.packet: Optional[bytearray] = None
        self.reservations: Dict[int, Tuple[RingBufMap, Any, Region]] = {}
        self.tracer: Any = None  # set while machine.trace() runs (openat.vm.trace)
        self.writes: Optional[List[Tuple[int, bytes]]] = None  # helpers' stores, while tracing
        self._values: Dict[Tuple[int, bytes, int], Region] = {}
        self._stack_tops = [self._add_stack(frame) for frame in range(MAX_FRAMES)]
        code, own_sources, names = self._code_of(program, maps)
        self._bind_maps(maps, names)
        self.instructions = self._decode(code, list(sources) if sources is not None else own_sources)
        self._by_slot = dict(self.instructions)
        self._starts = frozenset(self._by_slot)
        self._ops = compile_program(self, self.instructions, len(code) // 8)

    # ------------------------------------------------------------ loading

    def _add_stack(self, frame: int) -> int:
        name = "fp" if frame == 0 else f"fp{frame}"
        region = self.memory.add(name, bytearray(STACK_SIZE), window=STACK_WINDOW + 2 * frame, strict_alignment=True)
        return region.end

    def _code_of(self, program: ProgramInput, maps: MapsInput) -> Tuple[bytes, List[str], List[str]]:
        """The program's bytes, one source per slot, and the map names a Program uses."""
        if isinstance(program, Program):
            names = program.map_names
            fds = {name: _FIRST_MAP_FD + index for index, name in enumerate(names)}
            try:
                return program.encode(fds), program.slot_sources(), names
            except Exception as error:  # an AsmError: undefined label, jump too far
                raise VmError(f"cannot encode the program: {error}") from None
        if isinstance(program, (bytes, bytearray, memoryview)):
            code = bytes(program)
            return code, [""] * (len(code) // 8), []
        try:
            instructions = list(program)
            code = encode(instructions)
        except (TypeError, AttributeError):
            raise VmError(f"Machine() takes a Program, bytes or a list of Instructions, not {type(program).__name__}") from None
        sources = [ins.source for ins in instructions for _ in range(ins.slots)]
        return code, sources, []

    def _decode(self, code: bytes, sources: List[str]) -> List[Tuple[int, Instruction]]:
        try:
            items = list(iter_decode(code, callx=True))
        except DecodeError as error:
            raise VmError(f"cannot decode the program: {error}") from None
        result = []
        for slot, ins in items:
            ins = tuple.__new__(Instruction, (*ins[:5], sources[slot] if slot < len(sources) else ""))
            needed = required_level(ins[0], ins[2], ins[3], ins[4])
            if needed > self.level:
                raise VmError(f"needs ISA v{needed}, this machine runs {self.isa}", slot=slot,
                              instruction=format_instruction(ins), source=ins[5])
            result.append((slot, ins))
        return result

    def _bind_maps(self, maps: MapsInput, names: List[str]) -> None:
        """Fill ``maps`` (key -> map), the fd table the code's map loads use, and the handle table."""
        if maps is None:
            maps = {}
        if isinstance(maps, Mapping):
            listed = list(maps.values())
            self.maps: Dict[Union[str, int], VmMap] = dict(maps)
        else:
            listed = list(maps)
            self.maps = {bpf_map.name or index: bpf_map for index, bpf_map in enumerate(listed)}
        for bpf_map in listed:
            if not isinstance(bpf_map, VmMap):
                raise VmError(f"maps must be openat.vm maps (ArrayMap, HashMap, ...), got {type(bpf_map).__name__}")
        self._map_list = listed
        self._handles = {MAP_HANDLE_BASE + index * _MAP_HANDLE_STEP: m for index, m in enumerate(listed)}
        self._handle_of = {id(m): address for address, m in self._handles.items()}
        if names:  # a Program: its names got fds FIRST_MAP_FD.. in order
            missing = [name for name in names if name not in self.maps]
            if missing and not isinstance(maps, Mapping) and len(listed) >= len(names):
                self.maps.update(zip(names, listed))
                missing = []
            if missing:
                raise VmError(f"the program uses map {missing[0]!r}: pass maps={{{missing[0]!r}: ArrayMap(...)}} "
                              f"(or another openat.vm map)")
            self._fds = {_FIRST_MAP_FD + index: self.maps[name] for index, name in enumerate(names)}
        else:
            self._fds = {key: m for key, m in self.maps.items() if isinstance(key, int)}

    def wide_value(self, pseudo: int, imm: int, slot: int) -> Union[int, Callable[[], int]]:
        """What an ``lddw`` with this pseudo source loads: a constant, or a function computing it."""
        if pseudo == 0:
            return imm & M64
        if pseudo == BPF_PSEUDO_FUNC:
            target = slot + 1 + _signed32(imm & M32)
            if target not in self._starts:
                raise self.error_at(slot, f"ld_func target slot {target} is not an instruction of the program")
            return CODE_BASE + target * 8
        if pseudo == BPF_PSEUDO_BTF_ID:
            return self._fails(slot, f"kernel variables (BTF id {imm & M32}) are not modelled by openat.vm")
        if pseudo in (BPF_PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE):
            index = imm & M32
            if index >= len(self._map_list):
                raise self.error_at(slot, f"map index {index}: the machine has {len(self._map_list)} maps")
            bpf_map = self._map_list[index]
        else:
            bpf_map = self._fds.get(imm & M32)  # type: ignore[assignment]
            if bpf_map is None:
                raise self.error_at(slot, f"no map with fd {imm & M32}: pass maps={{{imm & M32}: ArrayMap(...)}}")
        if pseudo in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX):
            return self._handle_of[id(bpf_map)]
        return self._direct_value(bpf_map, (imm >> 32) & M32, slot)

    def _direct_value(self, bpf_map: VmMap, offset: int, slot: int) -> Callable[[], int]:
        """ld_map_value: the address of the single value of an array map, plus ``offset``."""
        if not isinstance(bpf_map, ArrayMap) or isinstance(bpf_map, PerCpuArrayMap) or bpf_map.max_entries != 1:
            raise self.error_at(slot, f"ld_map_value needs an array map of one entry (as the kernel does); "
                                      f"{bpf_map.name!r} is {bpf_map!r}")
        if offset >= bpf_map.value_size:
            raise self.error_at(slot, f"value offset {offset} is past the {bpf_map.value_size}-byte value of {bpf_map.name!r}")
        key = bytes(4)
        return lambda: self.value_address(bpf_map, key, 0) + offset

    def _fails(self, slot: int, reason: str) -> Callable[[], int]:
        def fail() -> int:
            raise self.error_at(slot, reason)

        return fail

    def instruction_at(self, slot: int) -> Optional[Instruction]:
        """The instruction starting at ``slot``, or None."""
        return self._by_slot.get(slot)

    def error_at(self, slot: int, reason: str) -> VmError:
        """A VmError naming the instruction at ``slot``."""
        ins = self._by_slot.get(slot) if hasattr(self, "_by_slot") else None
        if ins is None:
            return VmError(reason, slot=slot)
        return VmError(reason, slot=slot, instruction=format_instruction(ins, helper_comments=True), source=ins[5])

    # ------------------------------------------------------------ running

    def run(self, ctx: Optional[Union[bytes, bytearray]] = None, mem: Optional[Union[bytes, bytearray]] = None,
            *, budget: Optional[int] = None) -> int:
        """Run the program once and return r0 (an unsigned 64-bit value).

        ``ctx`` is the context r1 points to; ``mem`` the packet (what ``ld_abs``/``ld_ind``
        read). With only ``mem``, r1 points to it and r2 holds its length (the convention of
        uBPF and the bpf_conformance suite). A ``bytearray`` is used in place, so it holds
        what the program stored; ``machine.ctx`` and ``machine.packet`` hold them too.
        Raises :class:`VmError` when the program faults or runs past ``budget`` instructions.
        """
        self._start(ctx, mem)
        self._execute(self.budget if budget is None else budget)
        return self.registers[0]

    def trace(self, ctx: Optional[Union[bytes, bytearray]] = None, mem: Optional[Union[bytes, bytearray]] = None,
              *, budget: Optional[int] = None) -> "Any":
        """Run like :meth:`run`, recording each step: a :class:`~openat.vm.trace.Trace`, whose
        ``text()`` is for a person and whose ``steps`` are records for code. A run that
        faults still returns its trace, with the error in ``trace.error``."""
        from .trace import Trace  # tracing only: run() never imports it

        trace = Trace(self)
        self.tracer = trace
        try:
            self._start(ctx, mem)
            self._execute(self.budget if budget is None else budget)
            trace.result = self.registers[0]
        except VmError as error:
            trace.error = error
        finally:
            self.tracer = None
            self.writes = None
        trace.printk = list(self.printk)
        return trace

    def _start(self, ctx: Optional[Union[bytes, bytearray]], mem: Optional[Union[bytes, bytearray]]) -> None:
        r = self.registers
        r[:] = [0] * 11
        self.frames.clear()
        self.printk.clear()
        self.reservations.clear()
        self._values.clear()
        self.memory.clear_per_run()
        for frame in range(MAX_FRAMES):
            self.memory.regions[STACK_WINDOW + 2 * frame].data[:] = bytes(STACK_SIZE)
        self.ctx = self._place("ctx", ctx, CTX_WINDOW)
        self.packet = self._place("packet", mem, PACKET_WINDOW)
        if ctx is not None:
            r[1] = CTX_WINDOW << 32
        elif mem is not None:
            r[1], r[2] = PACKET_WINDOW << 32, len(mem)
        r[10] = self._stack_tops[0]

    def _place(self, name: str, data: Optional[Union[bytes, bytearray]], window: int) -> Optional[bytearray]:
        old = self.memory.regions.get(window)
        if old is not None:
            self.memory.remove(old)
        if data is None:
            return None
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise VmError(f"{name} must be bytes or a bytearray, not {type(data).__name__}")
        region = self.memory.add(name, data if isinstance(data, bytearray) else bytearray(data), window=window)
        return region.data  # type: ignore[return-value]

    def _execute(self, budget: int) -> None:
        if type(budget) is not int or budget < 1:
            raise VmError(f"the instruction budget must be a positive int, got {budget!r}")
        self._budget = budget
        self._ticks = repeat(None, budget)
        try:
            self._run_from(0)
        finally:
            self.steps = budget - self._ticks.__length_hint__()

    def _run_from(self, pc: int) -> None:
        """Run from slot ``pc`` until the exit of the frame it starts in."""
        if self.tracer is not None:
            return self._trace_from(pc)
        ops = self._ops
        try:
            for _ in self._ticks:
                pc = ops[pc]()
        except Exit:
            return None
        except Exception as error:  # noqa: BLE001 - every failure becomes a VmError naming pc
            raise self.stopped(pc, error) from None
        raise self.out_of_budget(pc)

    def _trace_from(self, pc: int) -> None:
        """:meth:`_run_from`, handing each step to the tracer."""
        ops, r, frames, record = self._ops, self.registers, self.frames, self.tracer.record
        for _ in self._ticks:
            before, printed, depth = r[:], len(self.printk), len(frames)
            self.writes = []
            slot = pc
            try:
                pc = ops[pc]()
            except Exit:
                record(slot, before, printed, depth)
                return None
            except Exception as error:  # noqa: BLE001 - every failure becomes a VmError naming slot
                raise self.stopped(slot, error) from None
            record(slot, before, printed, depth)
        raise self.out_of_budget(pc)

    def out_of_budget(self, pc: int) -> VmError:
        return self.error_at(pc, f"stopped: the instruction budget of {self._budget} is spent (an endless loop?); "
                                 f"Machine(budget=...) or run(budget=...) allows more")

    def stopped(self, pc: int, error: BaseException) -> VmError:
        """The VmError for ``error`` raised by the instruction at ``pc``."""
        if isinstance(error, VmError):
            ins = self._by_slot.get(pc)
            return error.at(pc, format_instruction(ins, helper_comments=True) if ins else "", ins[5] if ins else "")
        if isinstance(error, (KeyError, IndexError, struct.error)):
            return self.error_at(pc, self._fault_reason(pc))
        if isinstance(error, RecursionError):
            return self.error_at(pc, "callbacks nest too deeply")
        return self.error_at(pc, f"internal error: {type(error).__name__}: {error}")

    def _fault_reason(self, pc: int) -> str:
        """Why the memory access of the instruction at ``pc`` failed (its registers are unchanged)."""
        ins = self._by_slot.get(pc)
        if ins is None:
            return "memory fault"
        form = ins.form
        store = form.kind in ("st", "stx", "atomic")
        base = ins[1] if store else ins[2]
        address = (self.registers[base] + ins[3]) & M64
        verb = "store" if store else "load"
        region = self.memory.region_at(address)
        if region is not None and address + form.size <= region.end:
            if region.user:
                return (f"{verb} at {self.memory.describe(address)}: that is user memory, which a program "
                        f"reads with bpf_probe_read_user")
            if store and not region.writable:
                return f"store to {self.memory.describe(address)}: {region.name} is read-only"
        return f"{verb}: {self.memory.why_not(address, form.size)}"

    # ------------------------------------------------------------ what ops call

    def check_exit(self) -> None:
        """At the program's exit: nothing reserved may be left (the verifier's 'Unreleased reference')."""
        if self.reservations:
            count = len(self.reservations)
            raise VmError(f"the program exits holding {count} ring-buffer reservation{'s' if count > 1 else ''} "
                          f"neither submitted nor discarded")

    def misaligned_load(self, unpack: Callable[..., Tuple[int]], size: int) -> Callable[[int], int]:
        loads = self.memory.loads

        def load(address: int) -> int:
            self._check_alignment(address, size, "load")
            return unpack(loads[address >> 32], address & M32)[0]

        return load

    def misaligned_store(self, pack: Callable[..., None], size: int) -> Callable[[int, int], None]:
        stores = self.memory.stores

        def store(address: int, value: int) -> None:
            self._check_alignment(address, size, "store")
            pack(stores[address >> 32], address & M32, value)

        return store

    def _check_alignment(self, address: int, size: int, verb: str) -> None:
        region = self.memory.region_at(address)
        if region is None:
            return  # the access itself faults, with the reason
        if region.strict_alignment:
            raise VmError(f"misaligned {size}-byte {verb} at {self.memory.describe(address)}: stack accesses must be "
                          f"aligned to their size (the kernel verifier refuses others)")
        if self.strict_alignment:
            raise VmError(f"misaligned {size}-byte {verb} at {self.memory.describe(address)} (strict_alignment=True)")

    def bpf_call_op(self, target: int, nxt: int) -> Callable[[], int]:
        r, frames, tops = self.registers, self.frames, self._stack_tops

        def call() -> int:
            depth = len(frames) + 1
            if depth >= MAX_FRAMES:
                raise VmError(f"call depth limit: a program may nest {MAX_FRAMES} frames (Linux's MAX_CALL_FRAMES)")
            frames.append((nxt, r[6], r[7], r[8], r[9], r[10]))
            r[10] = tops[depth]
            return target

        return call

    def helper_call_op(self, helper_id: int, nxt: int) -> Callable[[], int]:
        r, helpers, machine = self.registers, self.helpers, self

        def call() -> int:
            function = helpers.get(helper_id)
            if function is None:
                raise VmError(machine.unknown_helper(helper_id))
            try:
                r[0] = int(function(machine, r[1], r[2], r[3], r[4], r[5])) & M64
            except VmError:
                raise
            except MemoryFault as fault:
                raise VmError(f"{helper_name(helper_id)}: {fault}") from None
            except Exception as error:  # noqa: BLE001 - a helper's bug, named
                raise VmError(f"{helper_name(helper_id)} raised {type(error).__name__}: {error}") from None
            return nxt

        return call

    def callx_op(self, register: int, nxt: int) -> Callable[[], int]:
        """``callx``: a code address (from ld_func) calls that function; a small number calls that
        helper (how the bpf_conformance suite and uBPF read it)."""
        r, machine = self.registers, self
        calls: Dict[int, Callable[[], int]] = {}

        def callx() -> int:
            value = r[register]
            op = calls.get(value)
            if op is None:
                slot = machine.code_slot(value)
                if slot is not None:
                    op = machine.bpf_call_op(slot, nxt)
                elif value <= M32:
                    op = machine.helper_call_op(value, nxt)
                else:
                    raise VmError(f"callx r{register}: {machine.memory.describe(value)} is neither code "
                                  f"(an ld_func address) nor a helper id")
                calls[value] = op
            return op()

        return callx

    def code_slot(self, address: int) -> Optional[int]:
        """The slot a code address (what ld_func loads) names, or None."""
        slot, rest = divmod(address - CODE_BASE, 8)
        return slot if not rest and slot in self._starts else None

    def packet_load_op(self, size: int, index: Optional[int], imm: int, nxt: int) -> Callable[[], int]:
        """ld_abs / ld_ind: a big-endian load from the packet; out of bounds, the program returns 0."""
        r, machine = self.registers, self

        def packet_load() -> int:
            packet = machine.packet
            offset = imm if index is None else _signed32((r[index] + imm) & M32)
            if packet is None or offset < 0 or offset + size > len(packet):
                if machine.frames:  # the end of the program, not of this function
                    raise VmError("a packet load in a called function: Linux refuses ld_abs/ld_ind in "
                                  "programs with bpf-to-bpf calls, so it has no way to end the program from here")
                r[0] = 0
                raise Exit
            r[0] = int.from_bytes(packet[offset : offset + size], "big")
            return nxt

        return packet_load

    # ------------------------------------------------------------ what helpers call

    def read(self, address: int, size: int, *, user: bool = False) -> bytes:
        """``size`` bytes of the program's memory (user memory with ``user``); MemoryFault if unreadable."""
        return self.memory.read(address, size, user=user)

    def read_string(self, address: int, limit: int, *, user: bool = False) -> bytes:
        """A NUL-terminated string (without the NUL) of at most ``limit`` bytes."""
        return self.memory.read_string(address, limit, user=user)

    def write(self, address: int, data: bytes) -> None:
        """Store ``data`` in the program's memory (a fault in the destination stops the program)."""
        self.memory.write(address, data)
        if self.writes is not None:
            self.writes.append((address, bytes(data)))

    def map_at(self, handle: int) -> VmMap:
        """The map a handle (what ld_map_fd loaded) names."""
        bpf_map = self._handles.get(handle)
        if bpf_map is None:
            raise VmError(f"{self.memory.describe(handle)} is not a map (a map argument comes from ld_map_fd)")
        return bpf_map

    def points_to(self, value: int) -> str:
        """What ``value`` points into, for a person: ``ctx+0x8``, ``map counter``, ``function at insn 7``, or ""."""
        bpf_map = self._handles.get(value)
        if bpf_map is not None:
            return f"map {bpf_map.name}" if bpf_map.name else "a map"
        slot = self.code_slot(value)
        if slot is not None:
            return f"function at insn {slot}"
        return self.memory.where(value)

    def map_of(self, ins: Instruction) -> Optional[VmMap]:
        """The map an lddw with a map pseudo source refers to, else None."""
        if ins[0] != 0x18 or ins[2] not in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_MAP_IDX,
                                            BPF_PSEUDO_MAP_IDX_VALUE):
            return None
        key = ins[4] & M32
        if ins[2] in (BPF_PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE):
            return self._map_list[key] if key < len(self._map_list) else None
        return self._fds.get(key)

    def handle_of(self, bpf_map: VmMap) -> int:
        """The address ld_map_fd loads for ``bpf_map``."""
        return self._handle_of[id(bpf_map)]

    def value_address(self, bpf_map: VmMap, key: bytes, cpu: int) -> int:
        """The address of the value under ``key`` (mapped on first use), or 0 when there is none."""
        cache_key = (id(bpf_map), key, cpu)
        region = self._values.get(cache_key)
        if region is not None:
            return region.base
        buffer = bpf_map.value_buffer(key, cpu)
        if buffer is None:
            return 0
        label = str(int.from_bytes(key, "little")) if isinstance(bpf_map, ArrayMap) else key.hex()
        suffix = f"@cpu{cpu}" if bpf_map.is_percpu else ""
        region = self.memory.add(f"{bpf_map.name or 'map'}[{label}]{suffix}", buffer, per_run=True)
        self._values[cache_key] = region
        return region.base

    def forget_value(self, bpf_map: VmMap, key: bytes) -> None:
        """Unmap the value of a deleted key: pointers to it now fault."""
        for cpu in range(bpf_map.cpus):
            region = self._values.pop((id(bpf_map), key, cpu), None)
            if region is not None:
                self.memory.remove(region)

    def reserve(self, ring: RingBufMap, size: int) -> int:
        """ringbuf_reserve: the address of ``size`` fresh bytes, or 0 when the ring is full."""
        record = ring.reserve(size)
        if record is None:
            return 0
        region = self.memory.add(f"{ring.name or 'ringbuf'} record", bytearray(size), per_run=True)
        self.reservations[region.base] = (ring, record, region)
        return region.base

    def commit(self, address: int, *, submit: bool) -> None:
        """ringbuf_submit (``submit``) or ringbuf_discard of the record at ``address``."""
        entry = self.reservations.pop(address, None)
        if entry is None:
            verb = "submit" if submit else "discard"
            raise VmError(f"ringbuf_{verb}: {self.memory.describe(address)} is not a record from ringbuf_reserve "
                          f"(or it was submitted or discarded already)")
        ring, record, region = entry
        self.memory.remove(region)
        ring.commit(record, bytes(region.data) if submit else None)

    def call_function(self, address: int, *args: int) -> int:
        """Run the program's function at ``address`` (an ld_func value) in a frame of its own, as
        callback helpers such as bpf_loop do; returns its r0."""
        slot = self.code_slot(address)
        if slot is None:
            raise VmError(f"{self.memory.describe(address)} is not the address of a function of the program")
        r, frames = self.registers, self.frames
        depth = len(frames) + 1
        if depth >= MAX_FRAMES:
            raise VmError(f"call depth limit: a program may nest {MAX_FRAMES} frames (Linux's MAX_CALL_FRAMES)")
        frames.append((None, r[6], r[7], r[8], r[9], r[10]))
        for register, value in enumerate((args + (0,) * 5)[:5], 1):
            r[register] = value & M64
        r[10] = self._stack_tops[depth]
        self._run_from(slot)
        return r[0]

    # ------------------------------------------------------------ helpers: registering, naming

    def register_helper(self, helper: Union[str, int], function: Helper) -> None:
        """Use ``function(machine, r1, r2, r3, r4, r5) -> r0`` for helper ``helper`` (a name such as
        ``"ktime_get_ns"`` or ``"bpf_ktime_get_ns"``, or any id: runtimes other than Linux
        number their own)."""
        if not callable(function):
            raise VmError(f"register_helper({helper!r}, ...): the helper must be callable")
        self.helpers[helper_id(helper)] = function

    def unknown_helper(self, number: int) -> str:
        if 0 <= number < len(HELPER_NAMES):
            return (f"helper {number} (bpf_{HELPER_NAMES[number]}) is not implemented by openat.vm; "
                    f"machine.register_helper({HELPER_NAMES[number]!r}, function) adds it")
        return (f"helper {number} is not a Linux helper (ids 0..{len(HELPER_NAMES) - 1}) and none is registered; "
                f"machine.register_helper({number}, function) adds it")


def helper_id(helper: Union[str, int]) -> int:
    """The id of a helper named ``helper`` (with or without ``bpf_``), or ``helper`` itself if an int."""
    if isinstance(helper, int) and not isinstance(helper, bool):
        return helper
    if not isinstance(helper, str):
        raise VmError(f"a helper is a name or an id, not {helper!r}")
    name = helper[4:] if helper.startswith("bpf_") else helper
    number = HELPER_IDS.get(name)
    if number is None:
        close = difflib.get_close_matches(name, HELPER_NAMES, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise VmError(f"unknown helper {helper!r}{hint}")
    return number


def helper_name(number: int) -> str:
    """``bpf_NAME`` of a Linux helper id, else ``helper N``."""
    return f"bpf_{HELPER_NAMES[number]}" if 0 <= number < len(HELPER_NAMES) else f"helper {number}"
