"""Program section names -> program type, expected attach type and attach point: libbpf's table (pure).

``SEC("kprobe/do_sys_openat2")`` in C puts a program in the ELF section of
that name; the section name is all a loader has to know what the program
is. The rules are libbpf's (``section_defs`` in libbpf.c):

- an entry ``"kprobe+"`` matches ``kprobe`` alone and ``kprobe/ANYTHING``;
- an entry ``"sk_skb/stream_parser"`` (no ``+``) matches only itself;
- the first entry that matches wins, so the more specific come first;
- a leading ``?`` (``SEC("?xdp")``) means "do not load unless asked", and
  is not part of the name that is matched.

What follows the ``/`` is the attach point: a kernel function for kprobes
and fentry/fexit (``func+0x10`` for an offset), ``category/name`` for
tracepoints, a raw tracepoint's name, ... An unknown section is listed in
the spec with the reason, never fatal; loading it says why it cannot.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

from ..uapi import BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS, AttachType, ProgType

__all__ = ["SECTION_DEFS", "SectionDef", "SectionMatch", "match_section"]

# Flags of an entry (libbpf's SEC_*), as far as a loader needs them.
SLEEPABLE = "sleepable"
ATTACH_BTF = "attach_btf"  # the target is found in the kernel's BTF at load time
XDP_FRAGS = "xdp_frags"


class SectionDef(NamedTuple):
    """One row of the table: ``pattern`` as libbpf spells it, and how to attach (a key of openat.collection's dispatch)."""

    pattern: str
    prog_type: int
    attach_type: int
    attach: str  # "kprobe", "kretprobe", "tracepoint", "raw_tracepoint", "tracing", "xdp", "tc", ... or "" (no automatic attach)
    flags: Tuple[str, ...] = ()


class SectionMatch(NamedTuple):
    """What a section name means: its row, the attach point after the ``/``, the program flags, and autoload."""

    definition: SectionDef
    attach_to: str
    prog_flags: int
    autoload: bool


def _row(pattern: str, prog_type: int, attach_type: int = 0, attach: str = "", *flags: str) -> SectionDef:
    return SectionDef(pattern, int(prog_type), int(attach_type), attach, flags)


P, A = ProgType, AttachType
SECTION_DEFS: Tuple[SectionDef, ...] = (
    _row("socket", P.SOCKET_FILTER, 0, "socket"),
    _row("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE),
    _row("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT),
    _row("kprobe+", P.KPROBE, 0, "kprobe"),
    _row("uprobe+", P.KPROBE, 0, "uprobe"),
    _row("uprobe.s+", P.KPROBE, 0, "uprobe", SLEEPABLE),
    _row("kretprobe+", P.KPROBE, 0, "kretprobe"),
    _row("uretprobe+", P.KPROBE, 0, "uprobe"),
    _row("uretprobe.s+", P.KPROBE, 0, "uprobe", SLEEPABLE),
    _row("kprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, "kprobe_multi"),
    _row("kretprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, "kprobe_multi"),
    _row("kprobe.session+", P.KPROBE, A.TRACE_KPROBE_SESSION, "kprobe_multi"),
    _row("uprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI, "uprobe"),
    _row("uretprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI, "uprobe"),
    _row("uprobe.session+", P.KPROBE, A.TRACE_UPROBE_SESSION, "uprobe"),
    _row("uprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, "uprobe", SLEEPABLE),
    _row("uretprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, "uprobe", SLEEPABLE),
    _row("uprobe.session.s+", P.KPROBE, A.TRACE_UPROBE_SESSION, "uprobe", SLEEPABLE),
    _row("ksyscall+", P.KPROBE, 0, "ksyscall"),
    _row("kretsyscall+", P.KPROBE, 0, "kretsyscall"),
    _row("usdt+", P.KPROBE, 0, "usdt"),
    _row("usdt.s+", P.KPROBE, 0, "usdt", SLEEPABLE),
    _row("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS, "tc"),
    _row("tc/egress", P.SCHED_CLS, A.TCX_EGRESS, "tc"),
    _row("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS, "tc"),
    _row("tcx/egress", P.SCHED_CLS, A.TCX_EGRESS, "tc"),
    _row("tc", P.SCHED_CLS, 0, "tc"),
    _row("classifier", P.SCHED_CLS, 0, "tc"),
    _row("action", P.SCHED_ACT),
    _row("netkit/primary", P.SCHED_CLS, A.NETKIT_PRIMARY),
    _row("netkit/peer", P.SCHED_CLS, A.NETKIT_PEER),
    _row("tracepoint+", P.TRACEPOINT, 0, "tracepoint"),
    _row("tp+", P.TRACEPOINT, 0, "tracepoint"),
    _row("tracepoint.s+", P.TRACEPOINT, 0, "tracepoint", SLEEPABLE),
    _row("tp.s+", P.TRACEPOINT, 0, "tracepoint", SLEEPABLE),
    _row("raw_tracepoint+", P.RAW_TRACEPOINT, 0, "raw_tracepoint"),
    _row("raw_tp+", P.RAW_TRACEPOINT, 0, "raw_tracepoint"),
    _row("raw_tracepoint.s+", P.RAW_TRACEPOINT, 0, "raw_tracepoint", SLEEPABLE),
    _row("raw_tp.s+", P.RAW_TRACEPOINT, 0, "raw_tracepoint", SLEEPABLE),
    _row("raw_tracepoint.w+", P.RAW_TRACEPOINT_WRITABLE, 0, "raw_tracepoint"),
    _row("raw_tp.w+", P.RAW_TRACEPOINT_WRITABLE, 0, "raw_tracepoint"),
    _row("tp_btf+", P.TRACING, A.TRACE_RAW_TP, "tracing", ATTACH_BTF),
    _row("tp_btf.s+", P.TRACING, A.TRACE_RAW_TP, "tracing", ATTACH_BTF, SLEEPABLE),
    _row("fentry+", P.TRACING, A.TRACE_FENTRY, "tracing", ATTACH_BTF),
    _row("fmod_ret+", P.TRACING, A.MODIFY_RETURN, "tracing", ATTACH_BTF),
    _row("fexit+", P.TRACING, A.TRACE_FEXIT, "tracing", ATTACH_BTF),
    _row("fentry.s+", P.TRACING, A.TRACE_FENTRY, "tracing", ATTACH_BTF, SLEEPABLE),
    _row("fmod_ret.s+", P.TRACING, A.MODIFY_RETURN, "tracing", ATTACH_BTF, SLEEPABLE),
    _row("fexit.s+", P.TRACING, A.TRACE_FEXIT, "tracing", ATTACH_BTF, SLEEPABLE),
    _row("freplace+", P.EXT, 0, "", ATTACH_BTF),
    _row("lsm+", P.LSM, A.LSM_MAC, "tracing", ATTACH_BTF),
    _row("lsm.s+", P.LSM, A.LSM_MAC, "tracing", ATTACH_BTF, SLEEPABLE),
    _row("lsm_cgroup+", P.LSM, A.LSM_CGROUP, "", ATTACH_BTF),
    _row("iter+", P.TRACING, A.TRACE_ITER, "", ATTACH_BTF),
    _row("iter.s+", P.TRACING, A.TRACE_ITER, "", ATTACH_BTF, SLEEPABLE),
    _row("syscall", P.SYSCALL, 0, "", SLEEPABLE),
    _row("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, "", XDP_FRAGS),
    _row("xdp/devmap", P.XDP, A.XDP_DEVMAP),
    _row("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, "", XDP_FRAGS),
    _row("xdp/cpumap", P.XDP, A.XDP_CPUMAP),
    _row("xdp.frags", P.XDP, A.XDP, "xdp", XDP_FRAGS),
    _row("xdp", P.XDP, A.XDP, "xdp"),
    _row("perf_event", P.PERF_EVENT),
    _row("lwt_in", P.LWT_IN),
    _row("lwt_out", P.LWT_OUT),
    _row("lwt_xmit", P.LWT_XMIT),
    _row("lwt_seg6local", P.LWT_SEG6LOCAL),
    _row("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, "cgroup"),
    _row("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER),
    _row("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT),
    _row("sk_skb/verdict", P.SK_SKB, A.SK_SKB_VERDICT),
    _row("sk_skb", P.SK_SKB),
    _row("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT),
    _row("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2),
    _row("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR),
    _row("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, "cgroup"),
    _row("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, "cgroup"),
    _row("cgroup/skb", P.CGROUP_SKB, 0, "cgroup"),
    _row("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, "cgroup"),
    _row("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE, "cgroup"),
    _row("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, "cgroup"),
    _row("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND, "cgroup"),
    _row("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, "cgroup"),
    _row("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, "cgroup"),
    _row("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND, "cgroup"),
    _row("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, "cgroup"),
    _row("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT, "cgroup"),
    _row("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT, "cgroup"),
    _row("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG, "cgroup"),
    _row("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, "cgroup"),
    _row("cgroup/sendmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_SENDMSG, "cgroup"),
    _row("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, "cgroup"),
    _row("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG, "cgroup"),
    _row("cgroup/recvmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_RECVMSG, "cgroup"),
    _row("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME, "cgroup"),
    _row("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME, "cgroup"),
    _row("cgroup/getpeername_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETPEERNAME, "cgroup"),
    _row("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME, "cgroup"),
    _row("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME, "cgroup"),
    _row("cgroup/getsockname_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME, "cgroup"),
    _row("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, "cgroup"),
    _row("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, "cgroup"),
    _row("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, "cgroup"),
    _row("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, "cgroup"),
    _row("struct_ops+", P.STRUCT_OPS),
    _row("struct_ops.s+", P.STRUCT_OPS, 0, "", SLEEPABLE),
    _row("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP),
    _row("netfilter", P.NETFILTER, A.NETFILTER),
)
del P, A


def _matches(pattern: str, name: str) -> Optional[str]:
    """The attach point ``name`` carries if it matches ``pattern`` ("" when none), else None."""
    if pattern.endswith("+"):
        stem = pattern[:-1]
        if name == stem:
            return ""
        if name.startswith(stem + "/"):
            return name[len(stem) + 1 :]
        return None
    if name == pattern:
        # "sk_skb/stream_parser" and friends: the attach point is the part after the first '/'
        return ""
    return None


def match_section(section: str) -> Optional[SectionMatch]:
    """What program a section named ``section`` holds, or None when libbpf's table has no such name."""
    autoload = not section.startswith("?")
    name = section[1:] if not autoload else section
    for definition in SECTION_DEFS:
        attach_to = _matches(definition.pattern, name)
        if attach_to is None:
            continue
        flags = 0
        if SLEEPABLE in definition.flags:
            flags |= BPF_F_SLEEPABLE
        if XDP_FRAGS in definition.flags:
            flags |= BPF_F_XDP_HAS_FRAGS
        if definition.pattern in ("tc/ingress", "tc/egress", "tcx/ingress", "tcx/egress"):
            attach_to = definition.pattern.split("/", 1)[1]
        return SectionMatch(definition, attach_to, flags, autoload)
    return None
