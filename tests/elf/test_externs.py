"""``__kconfig`` and ``__ksym`` externs resolved at load, checked against the kernel's own files."""

from __future__ import annotations

import gzip
import os
import re
import struct

import pytest

from openat.elf import ElfError, kconfig_data, load_spec, parse_config
from openat.elf.spec import ExternSpec

from ..support import need_root

pytestmark = [pytest.mark.both_kernels, pytest.mark.usefixtures("no_fd_leaks")]


def _run(spec, **options) -> dict:
    with spec.load(**options) as coll:
        program = next(iter(coll.programs.values()))
        program.test_run(ctx_in=bytes(16))
        return {name: variable.get() for name, variable in coll.variables.items()}


def _config_text() -> str:
    for path in ("/proc/config.gz", f"/boot/config-{os.uname().release}"):
        if os.path.exists(path):
            with open(path, "rb") as f:
                raw = f.read()
            return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
    pytest.skip("the kernel's config is in neither /proc/config.gz nor /boot")


def _kallsyms(name: str) -> int:
    with open("/proc/kallsyms") as f:
        for line in f:
            address, _, symbol = line.split()[:3]
            if symbol == name:
                return int(address, 16)
    return 0


def test_kconfig_and_untyped_ksym_values(bpf_object):
    need_root()
    text = _config_text()
    expected = dict(line.split("=", 1) for line in text.splitlines() if line.startswith("CONFIG_"))
    seen = _run(load_spec(bpf_object("externs")))
    major, minor, patch = (int(n or 0) for n in re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", os.uname().release).groups())
    assert seen["kernel_version"] == major << 16 | minor << 8 | min(patch, 255)
    assert seen["hz"] == int(expected["CONFIG_HZ"])
    assert seen["bpf_syscall"] == 1
    assert seen["tun"] == {"y": 1, "m": 2}.get(expected.get("CONFIG_TUN", ""), 0)
    assert seen["hostname"].rstrip(b"\0") == expected.get("CONFIG_DEFAULT_HOSTNAME", '""').strip('"').encode()[:15]
    assert seen["no_such_option"] == 0  # weak and missing
    assert seen["openat2_address"] == _kallsyms("do_sys_openat2") != 0
    assert seen["missing_ksym"] == 0


def test_a_config_file_given_at_load(bpf_object, tmp_path):
    need_root()
    config = tmp_path / "config"
    config.write_text("CONFIG_HZ=1000\nCONFIG_BPF_SYSCALL=y\n# CONFIG_TUN is not set\nCONFIG_DEFAULT_HOSTNAME=\"openat-test-host\"\n")
    seen = _run(load_spec(bpf_object("externs")), kconfig=str(config))
    assert (seen["hz"], seen["bpf_syscall"], seen["tun"]) == (1000, 1, 0)
    assert seen["hostname"] == b"openat-test-hos\0"  # cut to fit, NUL-terminated


def test_a_strong_kconfig_extern_missing_is_named(bpf_object, tmp_path):
    need_root()
    config = tmp_path / "config"
    config.write_text("CONFIG_BPF_SYSCALL=y\n")
    with pytest.raises(ElfError, match="kconfig extern 'CONFIG_HZ' is not set in the kernel's config"):
        load_spec(bpf_object("externs")).load(kconfig=str(config))


def test_a_typed_ksym_by_btf_id(bpf_object):
    need_root()
    if not _kallsyms("runqueues"):
        pytest.skip("/proc/kallsyms lists no data symbols (kernel without CONFIG_KALLSYMS_ALL): the kernel cannot place a typed ksym")
    cpu = os.sched_getaffinity(0)
    first = min(cpu)
    os.sched_setaffinity(0, {first})
    try:
        seen = _run(load_spec(bpf_object("ksyms")))
    finally:
        os.sched_setaffinity(0, cpu)
    assert seen["rq_cpu"] == first


def test_kconfig_values_are_encoded_by_type(bpf_object):
    """The pure encoder: each C type of libbpf's, from config text (no kernel needed)."""
    spec = load_spec(bpf_object("externs"))
    kconfig = spec.maps[".kconfig"]
    config = parse_config('CONFIG_HZ=0x3e8\nCONFIG_BPF_SYSCALL=n\nCONFIG_TUN=m\nCONFIG_DEFAULT_HOSTNAME="x"\n')
    data = kconfig_data(spec.btf, spec.externs.values(), kconfig.value_size, config, {"LINUX_KERNEL_VERSION": 0x060100, "LINUX_HAS_BPF_COOKIE": 1})
    ext = spec.externs
    assert struct.unpack_from("<i", data, ext["CONFIG_HZ"].offset)[0] == 1000
    assert data[ext["CONFIG_BPF_SYSCALL"].offset] == 0 and data[ext["LINUX_HAS_BPF_COOKIE"].offset] == 1
    assert struct.unpack_from("<I", data, ext["CONFIG_TUN"].offset)[0] == 2  # TRI_MODULE
    assert struct.unpack_from("<I", data, ext["LINUX_KERNEL_VERSION"].offset)[0] == 0x060100
    name = ext["CONFIG_DEFAULT_HOSTNAME"]
    assert data[name.offset : name.offset + name.size] == b"x" + bytes(15)
    for bad, message in [("CONFIG_HZ=fast", "is an integer"), ("CONFIG_HZ=1\nCONFIG_BPF_SYSCALL=m", "is a bool"),
                         ("CONFIG_HZ=1\nCONFIG_BPF_SYSCALL=y\nCONFIG_DEFAULT_HOSTNAME=bare", "not a quoted string")]:
        with pytest.raises(ElfError, match=message):
            kconfig_data(spec.btf, spec.externs.values(), kconfig.value_size, parse_config(bad), {})


def test_kconfig_layout_is_libbpfs(bpf_object):
    """By alignment (largest first), then size, then name: offsets as libbpf gives them."""
    externs = [e for e in load_spec(bpf_object("externs")).externs.values() if e.kind == "kconfig"]
    by_offset = sorted(externs, key=lambda e: e.offset)
    assert [e.name for e in by_offset] == [
        "CONFIG_HZ", "CONFIG_OPENAT_NO_SUCH_OPTION", "CONFIG_TUN", "LINUX_KERNEL_VERSION",
        "CONFIG_BPF_SYSCALL", "LINUX_HAS_BPF_COOKIE", "CONFIG_DEFAULT_HOSTNAME",
    ]
    assert all(e.offset % e.align == 0 for e in externs)
    assert isinstance(externs[0], ExternSpec)
