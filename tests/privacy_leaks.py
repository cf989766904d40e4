"""Deliberate leaks, run as their own process by test_privacy_strace.py to show that its checker
catches each kind before it is trusted to find none.

    python privacy_leaks.py network
    python privacy_leaks.py files [FILE-TO-REMOVE...]
    python privacy_leaks.py others FILE SOCKET
    python privacy_leaks.py telemetry CALMTUNES-ARGS...

``network`` opens the sockets the daemon must never open: UDP to port 53 on the loopback
address (a DNS query for a name under .invalid, which can reach no one), an AF_INET6 socket, a
packet socket and a routing netlink socket (the last two may be refused without privileges; the
attempt is what counts). ``files`` writes where a library would leave traces: ~/.cache,
~/.local and /tmp (that one is removed again at once: a file that existed for a moment is
still a leak), and removes the files named after it (another part's file gone is a write too).
``others`` reaches past its own files without writing one: it changes the mode and times of
FILE, connects to another program's Unix socket SOCKET and starts a program (``true``).
``telemetry`` runs the real ``calmtunes`` command with onnxruntime's telemetry
switched back on (the variable the package sets is removed again before onnxruntime is
imported), the exact leak the package's privacy settings exist to stop.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path


def network() -> None:
    # A DNS query (RFC 1035): id, flags (recursion desired), 1 question, for leak.calmtunes.invalid
    query = bytes.fromhex("abcd01000001000000000000") + b"".join(
        bytes([len(label)]) + label for label in (b"leak", b"calmtunes", b"invalid")
    ) + b"\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(query, ("127.0.0.1", 53))
    for family, kind, proto in ((socket.AF_INET6, socket.SOCK_DGRAM, 0),
                                (socket.AF_PACKET, socket.SOCK_RAW, 0),
                                (socket.AF_NETLINK, socket.SOCK_RAW, 0)):  # 0: NETLINK_ROUTE
        try:
            socket.socket(family, kind, proto).close()
        except OSError:
            pass  # refused (no IPv6, no CAP_NET_RAW): the attempt is in the trace all the same


def files(victims: list[str]) -> None:
    for victim in victims:  # another part's file, removed
        os.unlink(victim)
    home = Path.home()
    for path in (home / ".cache" / "calmtunes-leak" / "events.db",
                 home / ".local" / "share" / "calmtunes-leak.txt"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("leak\n")
    fd, name = tempfile.mkstemp(prefix="calmtunes-leak-", dir="/tmp")
    os.close(fd)
    os.unlink(name)


def others(victim: str, peer: str) -> None:
    import subprocess

    os.chmod(victim, 0o666)
    os.utime(victim)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(peer)
    subprocess.run(["true"], check=True)


def telemetry(args: list[str]) -> int:
    import calmtunes  # sets ORT_DISABLE_TELEMETRY=1 …

    del os.environ["ORT_DISABLE_TELEMETRY"]  # … which is undone before onnxruntime loads
    assert "onnxruntime" not in sys.modules
    from calmtunes.cli import main

    print(f"calmtunes {calmtunes.__version__} with onnxruntime telemetry on", file=sys.stderr)
    return main(args)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "network":
        network()
    elif mode == "files":
        files(sys.argv[2:])
    elif mode == "others":
        others(sys.argv[2], sys.argv[3])
    elif mode == "telemetry":
        raise SystemExit(telemetry(sys.argv[2:]))
    else:
        raise SystemExit(f"unknown mode {mode!r}: network, files, others or telemetry")
