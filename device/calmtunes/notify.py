"""systemd's notification protocol (sd_notify(3)), spoken over an AF_UNIX datagram socket.

Silent when ``NOTIFY_SOCKET`` is unset (run by hand, in tests). ``WATCHDOG_USEC`` (set by
systemd from ``WatchdogSec=``) gives the interval; we ping at half of it, as sd_watchdog_enabled(3)
advises, and only when the supervisor finds every component healthy.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = env.get("NOTIFY_SOCKET") or None
        if self._address and self._address.startswith("@"):
            self._address = "\0" + self._address[1:]  # abstract namespace
        self._sock: socket.socket | None = None
        self.dropped = 0  # messages the receiver's full queue refused
        self._dropping = False
        self._failing: str | None = None  # the last failure said (once per kind)
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        self.watchdog_usec: int | None = None
        if usec and (not pid or pid == str(os.getpid())):
            try:
                self.watchdog_usec = int(usec) if int(usec) > 0 else None
            except ValueError:
                log.warning("ignoring WATCHDOG_USEC=%r: not an integer", usec)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """Seconds between pings (half the watchdog timeout), or None without a watchdog."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def send(self, *fields: str) -> bool:
        """Send without ever waiting: the control loop calls this, and a receiver that does not
        read (a full queue: net.unix.max_dgram_qlen datagrams, 10 by default) must not stall the
        music's control. A message that cannot go now is dropped, and said once."""
        if self._address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, socket.MSG_DONTWAIT, self._address)
            if self._dropping or self._failing:
                self._dropping, self._failing = False, None
                log.info("sd_notify: the service manager takes notifications again")
            return True
        except BlockingIOError:
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                log.warning("sd_notify: the service manager is not reading its notification "
                            "socket (queue full); %s dropped, the daemon goes on without waiting",
                            fields[0].split("=", 1)[0])
            return False
        except OSError as exc:
            # said once per kind of failure: under systemd a watchdog that is never pinged
            # kills the daemon, and this line is then the only clue why
            why = exc.strerror or str(exc)
            if why != self._failing:
                self._failing = why
                log.warning("sd_notify to %s failed (%s); the daemon goes on, but systemd may "
                            "not hear READY or the watchdog", self._address.replace("\0", "@"),
                            why)
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *( [f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def stopping(self, status: str = "stopping") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
