"""The control socket: ``calmtunes status`` and friends talk to the daemon over it.

A Unix stream socket in the runtime directory, mode 0660 (owner and group only). One JSON
request per connection, one JSON reply. No network, by construction.

One slow or silent client never blocks another: each connection is served on its own short-lived
thread and must deliver its whole request (one line, at most :data:`MAX_REQUEST` bytes) within
:data:`REQUEST_TIMEOUT_S` in total, else it is answered ``ok: false`` and closed. At most
:data:`MAX_CLIENTS` are served at once; one more is answered ``ok: false`` ("busy") at once. The
client's uid, gid and pid come from the kernel (``SO_PEERCRED``) and are handed to the handler,
which decides what that client may see.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST = 4096  # bytes in one request line; a longer one is refused
REQUEST_TIMEOUT_S = 2.0  # s for a client to deliver its whole request (not per recv)
MAX_CLIENTS = 8  # connections served at once; more are answered "busy"
BACKLOG = 32  # connections the kernel queues before accept()
BUSY = "busy: too many connections to the control socket; try again"
TOO_LONG = f"request longer than {MAX_REQUEST} bytes; refused"


def socket_path(runtime_dir: str | os.PathLike[str]) -> Path:
    return Path(runtime_dir) / SOCKET_NAME


def in_use(path: Path, timeout: float = 0.5) -> bool:
    """Whether a server listens on the socket at ``path`` (a daemon that runs); a socket file
    that a stopped daemon left behind refuses the connection and is not in use."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (BlockingIOError, TimeoutError):  # its queue is full: it is there, and busy
            return True
        except (OSError, ValueError):  # nothing there, nobody listening, or not a usable path
            return False
        return True


@dataclass(frozen=True)
class Peer:
    """Who is on the other end of a connection, as the kernel tells it (``SO_PEERCRED``)."""

    pid: int
    uid: int
    gid: int


def peer_of(conn: socket.socket) -> Peer | None:
    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):  # AttributeError: no SO_PEERCRED outside Linux
        return None
    return Peer(*struct.unpack("3i", raw))


Handler = Callable[[dict[str, Any], "Peer | None"], dict[str, Any]]


class ControlServer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = Path(path)
        self.handler = handler
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.clients = 0  # being served now
        self.refused_busy = 0
        self.timed_out = 0

    def start(self) -> None:
        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o117)  # the socket is created 0660
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660)
        sock.listen(BACKLOG)
        sock.settimeout(0.5)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)  # e.g. EMFILE: do not spin
                continue
            with self._lock:
                busy = self.clients >= MAX_CLIENTS
                if not busy:
                    self.clients += 1
            if busy:
                self.refused_busy += 1
                _reply(conn, {"ok": False, "error": BUSY}, timeout=0.2)
                conn.close()
                continue
            try:
                threading.Thread(target=self._serve_one, args=(conn,), name="control-client",
                                 daemon=True).start()
            except RuntimeError:  # no thread to be had: answer busy rather than hang
                with self._lock:
                    self.clients -= 1
                _reply(conn, {"ok": False, "error": BUSY}, timeout=0.2)
                conn.close()

    def _serve_one(self, conn: socket.socket) -> None:
        try:
            with conn:
                deadline = time.monotonic() + REQUEST_TIMEOUT_S
                data, problem = self._read(conn, deadline)
                if problem:
                    reply = {"ok": False, "error": problem}
                else:
                    reply = self._handle(data, peer_of(conn))
                _reply(conn, reply, timeout=max(0.1, deadline - time.monotonic()))
                if problem == TOO_LONG:
                    _drain(conn, deadline)  # so the client may finish sending and read why
        except Exception:  # a bug here must not end the server; it is logged to be fixed
            log.exception("control socket: serving a request failed")
        finally:
            with self._lock:
                self.clients -= 1

    def _read(self, conn: socket.socket, deadline: float) -> tuple[bytes, str]:
        """One request line (its newline optional at end of stream), or why there is none."""
        data = bytearray()
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                self.timed_out += 1
                return b"", (f"no complete request within {REQUEST_TIMEOUT_S:g} s; send one JSON "
                             "object and a newline")
            conn.settimeout(left)
            try:
                chunk = conn.recv(MAX_REQUEST + 1)
            except TimeoutError:
                continue  # the deadline check above answers
            except OSError as exc:
                return b"", f"cannot read the request ({exc.strerror or exc})"
            if not chunk:
                break
            data += chunk
            if data.find(b"\n", 0, MAX_REQUEST + 1) < 0 and len(data) > MAX_REQUEST:
                return b"", TOO_LONG
        line = bytes(data.split(b"\n", 1)[0])
        if len(line) > MAX_REQUEST:
            return b"", TOO_LONG
        return line, ""

    def _handle(self, data: bytes, peer: Peer | None) -> dict[str, Any]:
        try:
            request = json.loads(data.decode() or "null")
        except (ValueError, RecursionError):  # bad UTF-8 or JSON, an int too long, deep nesting
            return {"ok": False, "error": "request is not JSON; send one JSON object such as "
                                          '{"cmd": "status"}'}
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return {"ok": False, "error": "request needs a 'cmd' (a string)"}
        return self.handler(request, peer)


def _reply(conn: socket.socket, reply: dict[str, Any], timeout: float) -> None:
    try:
        conn.settimeout(timeout)
        conn.sendall(_dumps(reply).encode() + b"\n")
    except OSError:
        pass  # the client left: nothing to tell it


def _drain(conn: socket.socket, deadline: float) -> None:
    """Read and drop what the client still sends, until it stops or the deadline."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            conn.settimeout(left)
            if not conn.recv(65536):
                return


def _dumps(reply: dict[str, Any]) -> str:
    """Strict JSON: a non-finite float (which JSON cannot carry) goes out as null."""
    try:
        return json.dumps(reply, allow_nan=False)
    except ValueError:
        return json.dumps(_finite_only(reply), allow_nan=False)


def _finite_only(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite_only(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_only(v) for v in x]
    return x


def request(path: Path, cmd: str, timeout: float = 3.0, **args: Any) -> dict[str, Any]:
    """Send one request to the daemon; raises OSError if it is not running, BlockingIOError if
    its queue of connections stayed full for all of ``timeout`` (it runs, but is swamped)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        while True:
            try:
                sock.connect(str(path))
                break
            except BlockingIOError:  # a Unix socket's full queue answers at once: wait for room
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data.decode())
