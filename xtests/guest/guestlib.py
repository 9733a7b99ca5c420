"""What the guest's Python test scripts share: one line a check, and the
first failure ends the script (the harness reads the FAIL: line)."""
import sys


def fail(msg):
    """Reports a failed check and exits 1."""
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def ok(msg):
    """Reports a passed check."""
    print(f"ok: {msg}", flush=True)
