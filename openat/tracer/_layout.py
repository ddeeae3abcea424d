"""Record layouts for the tracer's run-time path. GENERATED: do not edit.

Made by ``python -m openat.tracer.schema`` from the construct definitions in
openat/tracer/schema.py; tests/tracer/test_records.py fails when it is stale.
"""

EVENT_FORMAT = '<QIIIIQqiI16siIQIHH'
EVENT_SIZE = 88
EVENT_FIELDS = ('timestamp_ns', 'tid', 'pid', 'uid', 'gid', 'flags', 'ret', 'dfd', 'syscall', 'comm', 'filename_len', 'kind', 'cgroup_id', 'mntns_id', 'dir_len', 'dir_state',)
EVENT_OFFSETS = {'timestamp_ns': 0, 'tid': 8, 'pid': 12, 'uid': 16, 'gid': 20, 'flags': 24, 'ret': 32, 'dfd': 40, 'syscall': 44, 'comm': 48, 'filename_len': 64, 'kind': 68, 'cgroup_id': 72, 'mntns_id': 80, 'dir_len': 84, 'dir_state': 86}

INFLIGHT_FORMAT = '<QQQiI'
INFLIGHT_SIZE = 32
INFLIGHT_FIELDS = ('filename_ptr', 'flags', 'timestamp_ns', 'dfd', 'syscall',)
INFLIGHT_OFFSETS = {'filename_ptr': 0, 'flags': 8, 'timestamp_ns': 16, 'dfd': 24, 'syscall': 28}
