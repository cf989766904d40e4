"""The control socket: ``calmtunes status`` and friends talk to the daemon over it.

A Unix stream socket in the runtime directory, mode 0660 (owner and group only). One JSON
request per connection, one JSON reply. No network, by construction.

One slow or silent client never blocks another. The socket's own thread reads every
connection's request as it arrives, without a thread for it (at most :data:`MAX_WAITING` at once;
beyond that the one that has waited longest without sending a byte is told "busy" and let go), and
each must deliver its whole request (one line, at most :data:`MAX_REQUEST` bytes) within
:data:`REQUEST_TIMEOUT_S` in total, else it is answered ``ok: false`` and closed. Only a complete
request takes a client slot: it is served on a short-lived thread of its own, at most
:data:`MAX_CLIENTS` at once, and one more is answered ``ok: false`` ("busy") at once. So clients
that connect and send nothing cannot keep ``status`` from anyone, and a flood of them costs a
bounded number of sockets, a few KB each, and no thread. The client's uid, gid and pid come from
the kernel (``SO_PEERCRED``) and are handed to the handler, which decides what that client may
see.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import selectors
import socket
import stat
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
MAX_REPLY = 1 << 20  # bytes a client reads of a reply before it gives up
MAX_CLIENTS = 8  # requests served at once (a thread each); one more is answered "busy"
MAX_WAITING = 128  # connections still sending their request, read by the socket's own thread
BACKLOG = 32  # connections the kernel queues before accept()
BUSY = "busy: too many connections to the control socket; try again"
TOO_LONG = f"request longer than {MAX_REQUEST} bytes; refused"
MORE_THAN_ONE = ("more than one request on one connection; nothing was done: send one JSON "
                 "request per connection")


class SocketTaken(RuntimeError):
    """Another daemon answers on the control socket's path."""


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


@dataclass
class _Waiting:
    """A connection whose request is not complete yet."""

    conn: socket.socket
    deadline: float  # monotonic s by which its whole request must have come
    data: bytearray
    draining: bool = False  # told its request is too long; what it still sends is dropped


class ControlServer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = Path(path)
        self.handler = handler
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._waiting: dict[socket.socket, _Waiting] = {}  # in the order they came
        self._ino: int | None = None  # inode of the socket this server put at path
        # stop() writes a byte here: the serving thread sleeps in select() with no timeout
        # while no request is under way, instead of waking twice a second to look at a flag
        self._wake: tuple[int, int] | None = None
        self.clients = 0  # requests being served now
        self.refused_busy = 0
        self.timed_out = 0

    @property
    def waiting(self) -> int:
        """Connections still sending their request."""
        return len(self._waiting)

    def start(self) -> None:
        """Listen at :attr:`path`. The socket is bound and listening under a temporary name
        first and then renamed into place (replacing one a stopped daemon left), so the path
        never names a socket that is not yet listening: a client that saw it appear (``calmtunes
        status`` just after a start) would have been refused and told the daemon is not
        running."""
        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        # stop()'s pipe before the socket: once the socket is at its path nothing may fail, or a
        # daemon that goes on without it (an OSError here is logged, not fatal) leaves a socket
        # there that listens and never answers ("status" waits, a second daemon is refused)
        wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        except BaseException:
            _close_fds(wake)
            raise
        try:
            old = os.umask(0o117)  # the socket is created 0660
            try:
                sock.bind(str(tmp))
            finally:
                os.umask(old)
            os.chmod(tmp, 0o660)
            sock.listen(BACKLOG)
            sock.setblocking(False)
            if in_use(self.path):
                # two daemons started at once both found the folder free; the one that comes
                # second to its socket must not take the other's away
                raise SocketTaken(f"another calmtunes daemon answers on {self.path}")
            os.replace(tmp, self.path)
            self._ino = os.lstat(self.path).st_ino
        except BaseException:
            sock.close()
            _close_fds(wake)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._sock = sock
        self._stop.clear()
        self._wake = wake
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        try:
            self._thread.start()
        except RuntimeError as exc:
            # no thread to be had (the process's or the unit's limit): nothing would answer
            # the socket, so it goes, and the daemon is told as for any socket it cannot open
            # (it logs that and plays on) rather than dying at its start
            self.stop()
            raise OSError(errno.EAGAIN, f"no thread to serve {self.path} ({exc})") from exc

    def stop(self) -> None:
        self._stop.set()
        if self._wake is not None:
            with contextlib.suppress(OSError):  # full (a wake already pending) or closed
                os.write(self._wake[1], b"x")
        if self._thread is not None and self._thread.ident is None:
            self._thread = None  # never started: nothing to join
        if self._thread is not None:
            self._thread.join(2.0)
            if not self._thread.is_alive():
                self._thread = None
        if self._wake is not None and self._thread is None:
            _close_fds(self._wake)
            self._wake = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        # only our own socket: another daemon's (or anything someone put there) stays
        with contextlib.suppress(OSError):
            st = os.lstat(self.path)
            if self._ino is not None and st.st_ino == self._ino and stat.S_ISSOCK(st.st_mode):
                self.path.unlink()
        self._ino = None

    def _serve(self) -> None:
        assert self._sock is not None
        assert self._wake is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(self._wake[0], selectors.EVENT_READ)
            try:
                while not self._stop.is_set():
                    # asleep until a client, a request's deadline or stop(): no timer of its own
                    first = min((w.deadline for w in self._waiting.values()), default=None)
                    timeout = None if first is None else max(0.0, first - time.monotonic())
                    for key, _ in selector.select(timeout):
                        if key.fileobj == self._wake[0]:
                            break  # stop(): the loop's test sees it
                        if key.fileobj is self._sock:
                            self._accept(selector)
                        elif (waiting := self._waiting.get(key.fileobj)) is not None:
                            self._step(selector, waiting)
                    self._expire(selector, time.monotonic())
            finally:
                for waiting in list(self._waiting.values()):
                    self._let_go(selector, waiting)

    def _step(self, selector: selectors.BaseSelector, waiting: _Waiting) -> None:
        try:
            self._read(selector, waiting)
        except Exception:  # a bug here must not end the server; it is logged to be fixed
            log.exception("control socket: reading a request failed")
            self._let_go(selector, waiting)

    def _accept(self, selector: selectors.BaseSelector) -> None:
        assert self._sock is not None
        for _ in range(BACKLOG):  # what the queue holds, then back to the others
            try:
                conn, _ = self._sock.accept()
            except BlockingIOError:
                return
            except OSError:
                time.sleep(0.05)  # e.g. EMFILE: do not spin
                return
            conn.setblocking(False)
            if len(self._waiting) >= MAX_WAITING:
                silent = next((w for w in self._waiting.values()
                               if not w.data and not w.draining), None)
                if silent is None:  # all of them are sending: the newcomer waits its turn
                    self.refused_busy += 1
                    _reply_now(conn, {"ok": False, "error": BUSY})
                    conn.close()
                    continue
                self.refused_busy += 1  # the longest silent makes room
                _reply_now(silent.conn, {"ok": False, "error": BUSY})
                self._let_go(selector, silent)
            waiting = _Waiting(conn, time.monotonic() + REQUEST_TIMEOUT_S, bytearray())
            self._waiting[conn] = waiting
            selector.register(conn, selectors.EVENT_READ)

    def _read(self, selector: selectors.BaseSelector, waiting: _Waiting) -> None:
        """What the client sent since; its request once it is whole (its newline optional at
        end of stream), or why there is none."""
        conn, data = waiting.conn, waiting.data
        try:
            chunk = conn.recv(65536 if waiting.draining else MAX_REQUEST + 1 - len(data))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._answer(selector, waiting, f"cannot read the request ({exc.strerror or exc})")
            return
        if waiting.draining:
            if not chunk:
                self._let_go(selector, waiting)
            return
        data += chunk
        end = data.find(b"\n")
        if (end if end >= 0 else len(data)) > MAX_REQUEST:
            self._answer(selector, waiting, TOO_LONG)
        elif end >= 0 and data[end + 1:].strip():
            # a second request behind the first would be dropped unseen: neither is done
            self._answer(selector, waiting, MORE_THAN_ONE)
        elif end >= 0 or not chunk:
            self._dispatch(selector, waiting, bytes(data if end < 0 else data[:end]))

    def _expire(self, selector: selectors.BaseSelector, now: float) -> None:
        for waiting in [w for w in self._waiting.values() if w.deadline <= now]:
            if waiting.draining:
                self._let_go(selector, waiting)
            else:
                self.timed_out += 1
                self._answer(selector, waiting,
                             f"no complete request within {REQUEST_TIMEOUT_S:g} s; send one JSON "
                             "object and a newline")

    def _answer(self, selector: selectors.BaseSelector, waiting: _Waiting, problem: str) -> None:
        """Refuse a request that never came whole, here and now."""
        _reply_now(waiting.conn, {"ok": False, "error": problem})
        if problem == TOO_LONG:  # so the client may finish sending and read why
            with contextlib.suppress(OSError):
                waiting.conn.shutdown(socket.SHUT_WR)
            waiting.draining, waiting.data = True, bytearray()
            return
        self._let_go(selector, waiting)

    def _let_go(self, selector: selectors.BaseSelector, waiting: _Waiting) -> None:
        self._waiting.pop(waiting.conn, None)
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(waiting.conn)
        waiting.conn.close()

    def _dispatch(self, selector: selectors.BaseSelector, waiting: _Waiting, line: bytes) -> None:
        """A whole request: refused here if it is not one, else served on a thread of its own
        (or answered "busy" when :data:`MAX_CLIENTS` are being served)."""
        request, problem = _parse(line)
        if request is None:
            self._answer(selector, waiting, problem)
            return
        with self._lock:
            busy = self.clients >= MAX_CLIENTS
            if not busy:
                self.clients += 1
        if busy:
            self.refused_busy += 1
            self._answer(selector, waiting, BUSY)
            return
        self._waiting.pop(waiting.conn, None)
        selector.unregister(waiting.conn)
        conn = waiting.conn
        try:
            threading.Thread(target=self._serve_one, args=(conn, request, waiting.deadline),
                             name="control-client", daemon=True).start()
        except RuntimeError:  # no thread to be had: answer busy rather than hang
            with self._lock:
                self.clients -= 1
            _reply_now(conn, {"ok": False, "error": BUSY})
            conn.close()

    def _serve_one(self, conn: socket.socket, request: dict[str, Any], deadline: float) -> None:
        try:
            with conn:
                conn.setblocking(True)
                reply = self.handler(request, peer_of(conn))
                _reply(conn, reply, timeout=max(0.1, deadline - time.monotonic()))
        except Exception:  # a bug here must not end the server; it is logged to be fixed
            log.exception("control socket: serving a request failed")
        finally:
            with self._lock:
                self.clients -= 1


def _close_fds(fds: tuple[int, ...]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class _RepeatedKey(ValueError):
    """A JSON object that names a key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's keys, each at most once: JSON leaves a repeated key to the reader (Python
    keeps the last), so {"cmd": "status", "cmd": "volume", "arg": 0} could mean either, and a
    request is carried out only as the client meant it (the config file refuses them too)."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _RepeatedKey(key)
        obj[key] = value
    return obj


def _parse(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The request in one line, or why it is none."""
    try:
        request = json.loads(line.decode() or "null", object_pairs_hook=_unique_keys)
    except _RepeatedKey as exc:
        return None, f"request names {str(exc)!r} more than once; send each key once"
    except (ValueError, RecursionError):  # bad UTF-8 or JSON, an int too long, deep nesting
        return None, 'request is not JSON; send one JSON object such as {"cmd": "status"}'
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return None, "request needs a 'cmd' (a string)"
    return request, ""


def _reply_now(conn: socket.socket, reply: dict[str, Any]) -> None:
    """A refusal on a connection that must not block the socket's thread: a few hundred bytes
    into a socket nothing was sent on yet go at once, or not at all."""
    try:
        conn.send(_dumps(reply).encode() + b"\n")
    except OSError:
        pass  # the client left, or does not read: nothing to tell it


def _reply(conn: socket.socket, reply: dict[str, Any], timeout: float) -> None:
    try:
        conn.settimeout(timeout)
        conn.sendall(_dumps(reply).encode() + b"\n")
    except OSError:
        pass  # the client left: nothing to tell it


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
        data = bytearray()
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_REPLY:  # the daemon's status is a few KB: not our daemon
                raise ValueError(f"reply longer than {MAX_REPLY} bytes")
    return json.loads(data.decode())
