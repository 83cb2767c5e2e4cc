"""Killing a command at a known point of its run: after the fake model server has answered so many requests."""

from __future__ import annotations

import signal
import subprocess
import time


def sigkill_after_requests(cmd: list[str], server, requests: int, seconds: float = 60.0) -> str | None:
    """Start `cmd`, wait until `server` has had `requests` requests (or `seconds` passed), then SIGKILL it and wait
    for it; the tail of its stderr when it had already ended by itself (refused at the start), else None."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + seconds
    while server.request_count < requests and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    ended = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    return err.decode()[-2000:] if ended else None
