"""``union bpf_attr`` and the info structs, as ctypes Structures, and the bpf(2) call itself.

Each command gets a Structure holding just the members of ``union bpf_attr``
it uses, laid out as in linux/bpf.h; the kernel accepts a shorter attr and
zero-fills the rest, which is what libbpf does too. tests/syscalls checks
the offsets against the header.
"""

from __future__ import annotations

import ctypes
import re
from typing import Sequence

from ..uapi import BPF_OBJ_NAME_LEN, Cmd
from . import libc
from .errors import error_from_errno

__all__ = [
    "BtfInfoStruct",
    "BtfLoadAttr",
    "EnableStatsAttr",
    "GetIdAttr",
    "InfoAttr",
    "LinkCreateAttr",
    "LinkInfoStruct",
    "MapCreateAttr",
    "MapElemAttr",
    "MapInfoStruct",
    "ObjAttr",
    "ProgInfoStruct",
    "ProgLoadAttr",
    "RawTracepointAttr",
    "TestRunAttr",
    "bpf",
    "bpf_or_raise",
    "sanitize_name",
]

u32 = ctypes.c_uint32
u64 = ctypes.c_uint64
ObjName = ctypes.c_char * BPF_OBJ_NAME_LEN


class MapCreateAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", u32),
        ("key_size", u32),
        ("value_size", u32),
        ("max_entries", u32),
        ("map_flags", u32),
        ("inner_map_fd", u32),
        ("numa_node", u32),
        ("map_name", ObjName),
        ("map_ifindex", u32),
        ("btf_fd", u32),
        ("btf_key_type_id", u32),
        ("btf_value_type_id", u32),
        ("btf_vmlinux_value_type_id", u32),
        ("map_extra", u64),
    ]


class MapElemAttr(ctypes.Structure):
    _fields_ = [
        ("map_fd", u32),
        ("key", u64),
        ("value", u64),  # also next_key
        ("flags", u64),
    ]


class ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", u32),
        ("insn_cnt", u32),
        ("insns", u64),
        ("license", u64),
        ("log_level", u32),
        ("log_size", u32),
        ("log_buf", u64),
        ("kern_version", u32),
        ("prog_flags", u32),
        ("prog_name", ObjName),
        ("prog_ifindex", u32),
        ("expected_attach_type", u32),
        ("prog_btf_fd", u32),
        ("func_info_rec_size", u32),
        ("func_info", u64),
        ("func_info_cnt", u32),
        ("line_info_rec_size", u32),
        ("line_info", u64),
        ("line_info_cnt", u32),
        ("attach_btf_id", u32),
        ("attach_btf_obj_fd", u32),  # also attach_prog_fd
        ("core_relo_cnt", u32),
        ("fd_array", u64),
        ("core_relos", u64),
        ("core_relo_rec_size", u32),
        # Output since 6.4: the log size the verifier needed. Older kernels see
        # a zero tail and accept the longer attr.
        ("log_true_size", u32),
    ]


class TestRunAttr(ctypes.Structure):
    _fields_ = [
        ("prog_fd", u32),
        ("retval", u32),
        ("data_size_in", u32),
        ("data_size_out", u32),
        ("data_in", u64),
        ("data_out", u64),
        ("repeat", u32),
        ("duration", u32),
        ("ctx_size_in", u32),
        ("ctx_size_out", u32),
        ("ctx_in", u64),
        ("ctx_out", u64),
        ("flags", u32),
        ("cpu", u32),
        ("batch_size", u32),
    ]


class GetIdAttr(ctypes.Structure):
    _fields_ = [
        ("start_id", u32),  # also prog_id / map_id / link_id for GET_FD_BY_ID
        ("next_id", u32),
        ("open_flags", u32),
    ]


class InfoAttr(ctypes.Structure):
    _fields_ = [
        ("bpf_fd", u32),
        ("info_len", u32),
        ("info", u64),
    ]


class RawTracepointAttr(ctypes.Structure):
    _fields_ = [
        ("name", u64),
        ("prog_fd", u32),
    ]


class LinkCreateAttr(ctypes.Structure):
    # The tail is a union whose layout depends on attach_type; callers fill
    # the u64 words (see link_create) rather than modelling every variant.
    _fields_ = [
        ("prog_fd", u32),
        ("target_fd", u32),
        ("attach_type", u32),
        ("flags", u32),
        ("word16", u64),
        ("word24", u64),
        ("word32", u64),
        ("word40", u64),
    ]


class BtfLoadAttr(ctypes.Structure):
    _fields_ = [
        ("btf", u64),
        ("btf_log_buf", u64),
        ("btf_size", u32),
        ("btf_log_size", u32),
        ("btf_log_level", u32),
        # Output since 6.4, as for PROG_LOAD; older kernels see a zero tail.
        ("btf_log_true_size", u32),
    ]


class BtfInfoStruct(ctypes.Structure):
    _fields_ = [
        ("btf", u64),
        ("btf_size", u32),
        ("id", u32),
        ("name", u64),
        ("name_len", u32),
        ("kernel_btf", u32),
    ]


class ObjAttr(ctypes.Structure):
    """BPF_OBJ_PIN / BPF_OBJ_GET."""

    _fields_ = [
        ("pathname", u64),
        ("bpf_fd", u32),
        ("file_flags", u32),
    ]


class EnableStatsAttr(ctypes.Structure):
    _fields_ = [("type", u32)]


class ProgInfoStruct(ctypes.Structure):
    _fields_ = [
        ("type", u32),
        ("id", u32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", u32),
        ("xlated_prog_len", u32),
        ("jited_prog_insns", u64),
        ("xlated_prog_insns", u64),
        ("load_time", u64),
        ("created_by_uid", u32),
        ("nr_map_ids", u32),
        ("map_ids", u64),
        ("name", ObjName),
        ("ifindex", u32),
        ("gpl_compatible", u32),  # bit 0; the other 31 bits are padding
        ("netns_dev", u64),
        ("netns_ino", u64),
        ("nr_jited_ksyms", u32),
        ("nr_jited_func_lens", u32),
        ("jited_ksyms", u64),
        ("jited_func_lens", u64),
        ("btf_id", u32),
        ("func_info_rec_size", u32),
        ("func_info", u64),
        ("nr_func_info", u32),
        ("nr_line_info", u32),
        ("line_info", u64),
        ("jited_line_info", u64),
        ("nr_jited_line_info", u32),
        ("line_info_rec_size", u32),
        ("jited_line_info_rec_size", u32),
        ("nr_prog_tags", u32),
        ("prog_tags", u64),
        ("run_time_ns", u64),
        ("run_cnt", u64),
        ("recursion_misses", u64),
        ("verified_insns", u32),
        ("attach_btf_obj_id", u32),
        ("attach_btf_id", u32),
        ("_pad", u32),
    ]


class MapInfoStruct(ctypes.Structure):
    _fields_ = [
        ("type", u32),
        ("id", u32),
        ("key_size", u32),
        ("value_size", u32),
        ("max_entries", u32),
        ("map_flags", u32),
        ("name", ObjName),
        ("ifindex", u32),
        ("btf_vmlinux_value_type_id", u32),
        ("netns_dev", u64),
        ("netns_ino", u64),
        ("btf_id", u32),
        ("btf_key_type_id", u32),
        ("btf_value_type_id", u32),
        ("_pad", u32),
        ("map_extra", u64),
    ]


class LinkInfoStruct(ctypes.Structure):
    _fields_ = [
        ("type", u32),
        ("id", u32),
        ("prog_id", u32),
        ("_pad", u32),
        # union: raw_tracepoint {u64 tp_name; u32 tp_name_len}
        #        tracing {u32 attach_type; u32 target_obj_id; u32 target_btf_id}
        ("word16", u64),
        ("word24", u64),
        ("word32", u64),
        ("word40", u64),
    ]


def bpf(cmd: int, attr: ctypes.Structure) -> tuple[int, int]:
    """Raw bpf(cmd, &attr, sizeof attr); returns ``(result, errno)``."""
    return libc.syscall(libc.NR_BPF, int(cmd), ctypes.byref(attr), ctypes.sizeof(attr))


def bpf_or_raise(cmd: Cmd, attr: ctypes.Structure, what: str, missing_feature: Sequence[int] = ()) -> int:
    """bpf(cmd, &attr); the result, or the errno as an exception naming ``what`` was attempted.

    Errnos in ``missing_feature`` mean the kernel lacks the feature (NotSupportedError).
    """
    result, err = bpf(cmd, attr)
    if err:
        raise error_from_errno(err, f"BPF_{cmd.name}", what, missing_feature_errnos=missing_feature)
    return result


_NAME_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.]")


def sanitize_name(name: str) -> bytes:
    """An object name the kernel accepts: [A-Za-z0-9_.], at most 15 bytes.

    Anything else would make PROG_LOAD/MAP_CREATE fail with EINVAL, and a
    silently dropped name would defeat ``bpftool prog show``.
    """
    return _NAME_BAD_CHARS.sub("_", name)[: BPF_OBJ_NAME_LEN - 1].encode("ascii")
