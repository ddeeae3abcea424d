"""ctypes bindings for bpf(), perf_event_open(), ring buffers and tracefs."""
