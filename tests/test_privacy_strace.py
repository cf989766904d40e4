"""Nothing leaves the box and nothing is left behind: every command under strace.

``calmtunes simulate``, ``render``, ``selftest``, ``run`` (emulated sensor, camera and
panel, audio to a WAV file or nowhere) and ``report`` (matplotlib) run under ``strace -f`` as a
user would start them: with no telemetry variable in the environment, a fresh empty HOME and no
XDG folders but the run's own. One checker reads each trace and fails on

- any AF_INET, AF_INET6 or AF_PACKET socket and any routing netlink socket (what resolvers and
  network probes open), whether or not the kernel granted it;
- any connect, sendto, sendmsg or sendmmsg to port 53 (a DNS lookup), and any connection to
  another program's Unix socket (all but the run's own, systemd's notify socket, the name
  service cache and a JACK server's);
- any file or folder created (also in /dev/shm), any existing file opened for writing, removed,
  or with its mode, owner, length, times or attributes changed (devices and /proc aside),
  outside the run's state and runtime folders and its output file (with that file's
  temporaries beside it, ``.<name>.*``): ~/.cache, ~/.local, /tmp and the working folder are
  all watched. The one exception, by name, is PortAudio's JACK metadata folder (see JACK_METADATA
  below and docs/SOUP.md);
- any program started but those named in PROGRAMS (and their own sockets, PROGRAM_PEERS).

The checker is first shown to catch each kind of leak (tests/privacy_leaks.py): sockets, files
in ~/.cache, ~/.local and /tmp, a file changed, another program's socket, a program started,
and the real ``calmtunes simulate`` with onnxruntime's
telemetry switched back on, which writes under ~/.cache/Microsoft and looks up
mobile.events.data.microsoft.com about 9 s after onnxruntime is imported.

Needs strace (``apt-get install strace``, which ./scripts/test does); skipped where it is
missing or cannot trace (a container without ptrace).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from clocked import wait_until

HERE = Path(__file__).resolve().parent
DEVICE = HERE.parent / "device"
LEAKS = HERE / "privacy_leaks.py"

TRACED = ("socket", "connect", "sendto", "sendmsg", "sendmmsg",
          "open", "openat", "openat2", "creat", "mkdir", "mkdirat", "mknod", "mknodat",
          "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
          "unlink", "unlinkat", "rmdir",
          # a file's mode, owner, length, times or attributes changed is a write too
          "chmod", "fchmod", "fchmodat", "chown", "fchown", "fchownat", "lchown", "truncate",
          "fchmodat2", "utimensat", "setxattr", "lsetxattr", "fsetxattr", "removexattr",
          "lremovexattr", "fremovexattr",
          "execve", "execveat")
# what a command may start, by name: ctypes.util.find_library runs `ldconfig -p` (sounddevice
# looks PortAudio up so; where that finds nothing, gcc or ld, then objdump), selftest reads the
# watchdog settings with `systemctl show`, and the report's matplotlib lists the system's fonts
# with `fc-list`
PROGRAMS = ("ldconfig", "ldconfig.real", "systemctl", "fc-list", "gcc", "cc", "ld", "objdump")
# ... and the sockets such a program may use: systemctl asks systemd (its private socket as
# root, else through the system bus) on a machine booted with it
PROGRAM_PEERS = {"systemctl": ("/run/systemd/private", "/run/dbus/system_bus_socket",
                               "/var/run/dbus/system_bus_socket")}
# the Unix sockets a command may connect to beyond its own run folder: systemd's notify socket
# (the daemon's READY=1 and watchdog), the name service cache, and a JACK server's (libjack
# looks for one as PortAudio starts: see JACK_METADATA)
UNIX_PEERS = re.compile(r'^(?:/run/systemd/notify|/(?:var/)?run/nscd/socket|'
                        r'/dev/shm/jack_[\w.-]+)$')
_CHANGED_PATH = ("chmod", "chown", "lchown", "truncate", "setxattr", "lsetxattr", "removexattr",
                 "lremovexattr")
_CHANGED_AT = ("fchmodat", "fchmodat2", "fchownat", "utimensat")
_CHANGED_FD = ("fchmod", "fchown", "fsetxattr", "fremovexattr")
NETWORK_FAMILIES = ("AF_INET", "AF_INET6", "AF_PACKET")
# onnxruntime's native module: once it is loaded, its telemetry would have started.
ORT_LOADED = re.compile(r'"[^"]*onnxruntime[^"]*/onnxruntime_pybind11_state[^"]*\.so"')

pytestmark = pytest.mark.skipif(shutil.which("strace") is None,
                                reason="strace not installed (apt-get install strace)")


# -- the checker ----------------------------------------------------------------------------------
_LINE = re.compile(r"^(?:\d+\s+)?(\w+)\((.*)$")
_FD = re.compile(r"^(?:AT_FDCWD|-?\d+)(?:<(.*)>)?$")
_WRITE_FLAGS = re.compile(r"\bO_(?:WRONLY|RDWR|CREAT|TRUNC|APPEND|TMPFILE)\b")
_CREATE_FLAGS = re.compile(r"\bO_(?:CREAT|TMPFILE)\b")


def _split_args(text: str) -> list[str]:
    """strace's argument list split at top-level commas (quotes, brackets and the ``<path>``
    that ``-y`` puts after a file descriptor are kept whole); stops at the closing bracket."""
    args, depth, cur, i, quoted = [], 0, [], 0, False
    while i < len(text):
        c = text[i]
        if quoted:
            cur.append(c)
            if c == "\\" and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
            cur.append(c)
        elif c in "([{" or (c == "<" and cur and cur[-1].isalnum()):
            depth += 1
            cur.append(c)
        elif c in ")]}>" and depth > 0:
            depth -= 1
            cur.append(c)
        elif c == ")" and depth == 0:
            break
        elif c == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    args.append("".join(cur).strip())
    return args


def _unquote(arg: str) -> str | None:
    if len(arg) >= 2 and arg[0] == '"':
        return re.sub(r"\\(.)", r"\1", arg[1:arg.rindex('"')])
    return None


def _path(dirfd: str | None, arg: str, cwd: Path) -> Path | None:
    name = _unquote(arg)
    if name is None:
        return None
    base = cwd
    if dirfd is not None:
        m = _FD.match(dirfd)
        if m and m.group(1):
            base = Path(m.group(1))
    return Path(os.path.normpath(base / name))


@dataclass
class Allowed:
    folders: list[Path]
    files: list[Path]
    programs: tuple[str, ...] = ()  # the command itself (its first execve)

    def __contains__(self, path: Path) -> bool:
        """In an allowed folder, an output, or an output's temporary (``.<name>.*`` beside it,
        and what is in it): the file written whole, then renamed into place."""
        path = Path(os.path.normpath(path))
        if path in self.files:
            return True
        for f in self.files:
            for p in (path, *path.parents):
                if p.parent == f.parent and p.name.startswith(f".{f.name}."):
                    return True
        return any(path == d or d in path.parents for d in self.folders)


_UNFINISHED = " <unfinished ...>"
_RESUMED = re.compile(r"^(\d+)\s+<\.\.\. \w+ resumed>(.*)$")


def _calls(text: str):
    """Each system call of an ``strace -f`` log on one line: a call that another thread
    interrupted (``<unfinished ...>``) is joined with its ``<... resumed>`` rest."""
    pending: dict[str, str] = {}
    for line in text.splitlines():
        if line.endswith(_UNFINISHED):
            pid = line.split(None, 1)[0]
            pending[pid] = line[: -len(_UNFINISHED)]
            continue
        m = _RESUMED.match(line)
        if m:
            if m.group(1) in pending:
                yield pending.pop(m.group(1)) + m.group(2)
            continue
        yield line
    yield from pending.values()  # never finished (the process was killed): still attempted


def findings(log: Path, allowed: Allowed, cwd: Path) -> list[str]:
    """Everything in an ``strace -f -y`` log that reached for the network, left a file or
    removed one.
    A call is counted whether or not it succeeded (an attempt is the leak), except a creation
    refused because the thing was already there (EEXIST): nothing was made."""
    found: list[str] = []
    programs: dict[str, str] = {}  # pid -> the program it runs (its last execve that worked)
    for line in _calls(log.read_text(errors="replace")):
        m = _LINE.match(line)
        if not m or m.group(1) not in TRACED:
            continue  # a signal or an exit
        pid = line.split(None, 1)[0] if line[:1].isdigit() else ""
        call, args = m.group(1), _split_args(m.group(2))
        if re.search(r"\) += -1 EEXIST\b", line):
            continue
        if call == "socket":
            family = args[0]
            if family in NETWORK_FAMILIES or (
                    family == "AF_NETLINK" and len(args) > 2 and args[2] == "NETLINK_ROUTE"):
                found.append(f"network socket: {line.strip()}")
            continue
        if call in ("connect", "sendto", "sendmsg", "sendmmsg"):
            if "htons(53)" in m.group(2):
                found.append(f"DNS (port 53): {line.strip()}")
            peer = re.search(r'sun_path=(@?"[^"]*"|@[^,}]*)', m.group(2))
            if peer:  # a Unix socket: the run's own, or one of the few named
                where = peer.group(1).replace('"', "")
                own = PROGRAM_PEERS.get(Path(programs.get(pid, "")).name, ())
                if not (Path(where) in allowed or UNIX_PEERS.match(where) or where in own):
                    found.append(f"connected to another program's socket: {where}   "
                                 f"({line.strip()})")
            continue
        if call in ("execve", "execveat"):
            program = _unquote(args[0] if call == "execve" else args[1]) or args[0]
            if re.search(r"\) += 0\b", line):
                programs[pid] = program
            name = Path(program).name
            if program not in allowed.programs and name not in PROGRAMS and not name.endswith(
                    ("-gcc", "-ld", "-objdump")):
                found.append(f"ran a program: {program}   ({line.strip()})")
            continue
        if call in _CHANGED_PATH or call in _CHANGED_AT or call in _CHANGED_FD:
            if call in _CHANGED_PATH:
                changed = _path(None, args[0], cwd)
            elif call in _CHANGED_AT and args[1] != "NULL":
                changed = _path(args[0], args[1], cwd)
            else:  # a file descriptor: its path, which -y shows
                fd = _FD.match(args[0])
                changed = Path(fd.group(1)) if fd and fd.group(1) else None
            if changed is not None and not str(changed).startswith(("/dev/", "/proc/")) \
                    and changed not in allowed:
                found.append(f"changed outside the run's folders: {changed}   "
                             f"({line.strip()})")
            continue
        made: Path | None = None
        written: Path | None = None
        if call in ("open", "creat"):
            path = _path(None, args[0], cwd)
            flags = args[1] if call == "open" and len(args) > 1 else "O_CREAT"
        elif call in ("openat", "openat2"):
            path = _path(args[0], args[1], cwd)
            flags = args[2] if len(args) > 2 else ""
        elif call in ("mkdir", "mknod"):
            made = _path(None, args[0], cwd)
            path, flags = None, ""
        elif call in ("mkdirat", "mknodat"):
            made = _path(args[0], args[1], cwd)
            path, flags = None, ""
        elif call in ("rename", "link", "symlink"):
            made = _path(None, args[1], cwd)
            path, flags = None, ""
        elif call in ("renameat", "renameat2", "linkat"):
            made = _path(args[2], args[3], cwd)
            path, flags = None, ""
        elif call in ("unlink", "rmdir", "unlinkat"):
            # a removal is a write too: another part's file (the device's fault note) gone
            gone = (_path(None, args[0], cwd) if call != "unlinkat"
                    else _path(args[0], args[1], cwd))
            if gone not in allowed:
                found.append(f"removed outside the run's folders: {gone}   ({line.strip()})")
            continue
        else:  # symlinkat(target, newdirfd, linkpath)
            made = _path(args[1], args[2], cwd)
            path, flags = None, ""
        if path is not None and _WRITE_FLAGS.search(flags):
            if _CREATE_FLAGS.search(flags):
                made = path
            elif not str(path).startswith(("/dev/", "/proc/")):
                written = path
        if made is not None and made not in allowed:
            found.append(f"created outside the run's folders: {made}   ({line.strip()})")
        if written is not None and written not in allowed:
            found.append(f"opened for writing outside the run's folders: {written}   "
                         f"({line.strip()})")
    return found


# -- running a command the way a user does, under strace --------------------------------------
def calmtunes_command() -> list[str]:
    """The venv's ``calmtunes`` entry point (as a user runs it), else ``python -m calmtunes``."""
    script = Path(sys.executable).with_name("calmtunes")
    return [str(script)] if script.exists() else [sys.executable, "-m", "calmtunes"]


class Sandbox:
    """A fresh HOME, the run's own state and runtime folders and an empty working folder."""

    def __init__(self, base: Path, audio: str = '"null"') -> None:
        self.base = base
        self.home, self.state, self.run, self.work = (base / n for n in
                                                       ("home", "state", "run", "work"))
        for d in (self.home, self.state, self.run, self.work):
            d.mkdir()
        self.config = base / "calmtunes.yaml"
        self.config.write_text(
            "device:\n"
            f"  state_dir: {self.state / 'calmtunes'}\n"
            f"  runtime_dir: {self.run / 'calmtunes'}\n"
            "  simulate: true\n"
            f"audio:\n  backend: {audio}\n"
            "pulse:\n  backend: sim\nscene:\n  backend: sim\npanel:\n  backend: mock\n"
            "music:\n  generator: onnx\n")
        self.outputs: list[Path] = []
        self.tolerated: list[Path] = []
        self.log = base / "strace.log"

    def env(self) -> dict[str, str]:
        """Only what a login shell would give, with a fresh HOME: no ORT_* or other telemetry
        variable, no XDG folder but the run's state and runtime ones (``calmtunes simulate``
        may take its folders from there), and no bytecode written, as the unit has it
        (``PYTHONDONTWRITEBYTECODE``: a venv installed without compiling, as uv makes it, would
        otherwise compile site-packages at the first run)."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
                "LANG": "C.UTF-8", "PYTHONPATH": str(DEVICE), "PYTHONDONTWRITEBYTECODE": "1",
                "XDG_STATE_HOME": str(self.state), "XDG_RUNTIME_DIR": str(self.run)}

    def out(self, name: str) -> Path:
        path = self.work / name
        self.outputs.append(path)
        return path

    def strace(self, cmd: list[str]) -> list[str]:
        return ["strace", "-f", "-qq", "-y", "-s", "64", "-o", str(self.log),
                "-e", "trace=" + ",".join("?" + c for c in TRACED), *cmd]

    def call(self, cmd: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(self.strace(cmd), capture_output=True, text=True,
                              timeout=timeout, env=self.env(), cwd=self.work)

    def start(self, cmd: list[str]) -> subprocess.Popen:
        return subprocess.Popen(self.strace(cmd), stdout=subprocess.DEVNULL,
                                stderr=open(self.base / "stderr.log", "w"), text=True,
                                env=self.env(), cwd=self.work)

    def study(self, listener: str, seconds: int) -> None:
        """One night of a simulated ``listener`` into the run's state folder (not traced): the
        records the commands under test then read."""
        done = subprocess.run([*calmtunes_command(), "simulate", "--listener", listener,
                               "--nights", "1", "--duration", str(seconds), "--virtual-clock",
                               "--state-dir", str(self.state / "calmtunes")],
                              capture_output=True, text=True, timeout=180, env=self.env(),
                              cwd=self.work)
        assert done.returncode == 0, done.stderr[-3000:]

    def stderr(self) -> str:
        return (self.base / "stderr.log").read_text()

    def wait_in_log(self, pattern: re.Pattern, proc: subprocess.Popen, within_s: float) -> bool:
        """Whether ``pattern`` appears in the trace before ``within_s`` or the process ends."""

        def seen() -> bool:
            return bool(self.log.exists()
                        and pattern.search(self.log.read_text(errors="replace")))

        with contextlib.suppress(AssertionError):  # not within the time: say so by the result
            wait_until(lambda: seen() or proc.poll() is not None, timeout=within_s,
                       what=f"{pattern.pattern!r} in the trace")
        return seen()

    def stop(self, proc: subprocess.Popen) -> int:
        """SIGTERM to the traced command (the first process in the trace), as systemd stops it."""
        first = self.log.read_text().split(None, 1)[0]
        try:
            os.kill(int(first), signal.SIGTERM)
            return proc.wait(timeout=30)
        finally:
            proc.kill()

    def allowed(self) -> Allowed:
        return Allowed(folders=[self.state, self.run, *self.tolerated], files=list(self.outputs),
                       programs=self.programs())

    def programs(self) -> tuple[str, ...]:
        """What the trace began with: the command strace was given to start."""
        first = re.search(r'execve\("([^"]+)"', self.log.read_text(errors="replace"))
        return (first.group(1),) if first else ()

    def findings(self) -> list[str]:
        assert self.log.stat().st_size > 0  # strace saw the process
        return findings(self.log, self.allowed(), self.work)

    def assert_clean(self) -> None:
        found = self.findings()
        assert found == [], "\n".join(found)
        assert list(self.home.iterdir()) == []
        assert sorted(self.work.iterdir()) == sorted(p for p in self.outputs if p.exists())


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    probe = subprocess.run(["strace", "-qq", "-o", str(tmp_path / "probe.log"), "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.strip()[:200]}")
    (tmp_path / "probe.log").unlink()
    return Sandbox(tmp_path)


# -- the watcher is shown to catch each kind of leak first --------------------------------------
def test_checker_catches_sockets_and_a_dns_query(box):
    done = box.call([sys.executable, str(LEAKS), "network"], timeout=60)
    assert done.returncode == 0, done.stderr
    found = box.findings()
    for kind in ("socket(AF_INET,", "socket(AF_INET6,", "socket(AF_PACKET,", "NETLINK_ROUTE"):
        assert any(f.startswith("network socket") and kind in f for f in found), (kind, found)
    assert any(f.startswith("DNS (port 53)") and "sendto(" in f for f in found), found


def test_checker_catches_files_in_cache_local_and_tmp(box):
    victim = box.base / "fault.json"  # another part's file, outside the run's folders
    victim.write_text("{}")
    done = box.call([sys.executable, str(LEAKS), "files", str(victim)], timeout=60)
    assert done.returncode == 0, done.stderr
    assert any(f.startswith(f"removed outside the run's folders: {victim} ")
               for f in box.findings()), box.findings()
    made = [f for f in box.findings() if f.startswith("created outside")]
    for where in (box.home / ".cache" / "calmtunes-leak", box.home / ".cache" / "calmtunes-leak"
                  / "events.db", box.home / ".local" / "share" / "calmtunes-leak.txt"):
        assert any(f"outside the run's folders: {where} " in f for f in made), (where, made)
    assert any("/tmp/calmtunes-leak-" in f for f in made), made  # removed again: still caught


def test_checker_catches_a_file_changed_a_program_run_and_another_programs_socket(box):
    import socket as sockets

    victim = box.base / "fault.json"  # another part's file, outside the run's folders
    victim.write_text("{}")
    peer = box.base / "other.sock"  # another program's server
    with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as server:
        server.bind(str(peer))
        server.listen(1)
        done = box.call([sys.executable, str(LEAKS), "others", str(victim), str(peer)],
                        timeout=60)
    assert done.returncode == 0, done.stderr
    found = box.findings()
    for call in ("chmod(", "utimensat("):
        assert any(f.startswith(f"changed outside the run's folders: {victim} ") and call in f
                   for f in found), (call, found)
    assert any(f.startswith(f"connected to another program's socket: {peer} ")
               for f in found), found
    ran = [f for f in found if f.startswith("ran a program: ")]
    assert ran and all(f.split()[3].endswith("/true") for f in ran), ran  # not the command


def test_a_programs_own_socket_is_allowed_to_it_alone(tmp_path):
    # systemctl asks systemd over the system bus on a machine booted with it; the command
    # itself reaching the same bus is another program's socket
    log = tmp_path / "strace.log"
    bus = '{sa_family=AF_UNIX, sun_path="/run/dbus/system_bus_socket"}'
    log.write_text(
        '100 execve("/usr/bin/python3", ["python3"], 0x1 /* 3 vars */) = 0\n'
        '101 execve("/usr/bin/systemctl", ["systemctl", "show"], 0x1 /* 3 vars */) = 0\n'
        f"101 connect(3<socket:[1]>, {bus}, 110) = 0\n"
        f"100 connect(4<socket:[2]>, {bus}, 110) = 0\n")
    found = findings(log, Allowed(folders=[], files=[], programs=("/usr/bin/python3",)),
                     tmp_path)
    assert len(found) == 1 and found[0].startswith(
        "connected to another program's socket: /run/dbus/system_bus_socket") and \
        "100 connect" in found[0]


def test_checker_allows_the_run_folders_and_the_output():
    allowed = Allowed(folders=[Path("/x/state")], files=[Path("/x/out/out.wav")])
    assert Path("/x/state/calmtunes/sessions.db") in allowed
    assert Path("/x/state") in allowed
    assert Path("/x/out/out.wav") in allowed
    assert Path("/x/out/out.wav.tmp") not in allowed
    assert Path("/x/out/.out.wav.k2j9x") in allowed  # its temporary, renamed into place
    assert Path("/x/out/.out.wav.k2j9x/a/b") in allowed
    assert Path("/x/out/.out.wav") not in allowed
    assert Path("/x/.out.wav.k2j9x") not in allowed
    assert Path("/x/out/sub/.out.wav.k2j9x") not in allowed
    assert Path("/x/statefile") not in allowed
    assert Path("/x/state/../home/.cache/x") not in allowed


@pytest.mark.slow
def test_checker_catches_onnxruntime_telemetry_switched_back_on(box):
    """The real ``calmtunes simulate`` with only the telemetry variable removed again: its
    files under ~/.cache appear at once, the DNS lookup about 9 s after onnxruntime loads."""
    dns = re.compile(r"htons\(53\)")
    proc = box.start([sys.executable, str(LEAKS), "telemetry", "simulate", "--config",
                      str(box.config), "--duration", "120", "--out", str(box.out("ctl.wav"))])
    try:
        looked_up = box.wait_in_log(dns, proc, within_s=90)
        code = box.stop(proc)
    finally:
        proc.kill()
    assert code == 0, box.stderr()[-3000:]
    assert "with onnxruntime telemetry on" in box.stderr()
    found = box.findings()
    telemetry_dir = box.home / ".cache" / "Microsoft" / "DeveloperTools" / ".onnxruntime"
    assert any(f"{telemetry_dir}/onnxruntime.db " in f for f in found), found
    assert (telemetry_dir / "deviceid").exists()
    assert looked_up, f"no DNS lookup in 90 s; found only: {found}"
    assert any(f.startswith("network socket: ") and "AF_INET" in f for f in found), found
    assert any(f.startswith("DNS (port 53)") for f in found), found


# -- the commands themselves ---------------------------------------------------------------------
def _assert_onnxruntime_loaded(box: Sandbox) -> None:
    """The run reached the point where onnxruntime's telemetry would start (else it proves
    nothing about it)."""
    assert ORT_LOADED.search(box.log.read_text(errors="replace")), \
        "onnxruntime was never loaded: the run did not exercise the neural composer"


@pytest.mark.slow
def test_simulate_opens_no_socket_and_leaves_nothing(box):
    out = box.out("sim.wav")
    done = box.call([*calmtunes_command(), "simulate", "--config", str(box.config),
                     "--duration", "3", "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.stat().st_size > 44
    _assert_onnxruntime_loaded(box)
    box.assert_clean()


@pytest.mark.slow
def test_render_opens_no_socket_and_leaves_nothing(box):
    out = box.out("render.wav")
    done = box.call([*calmtunes_command(), "render", "--config", str(box.config),
                     "--minutes", "0.1", "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "onnx composer" in done.stdout, done.stdout  # the neural path, onnxruntime and all
    _assert_onnxruntime_loaded(box)
    box.assert_clean()


@pytest.mark.slow
def test_report_opens_no_socket_and_leaves_nothing(box):
    pytest.importorskip("matplotlib")
    box.study("prefers-sleep", 300)
    out = box.out("report.html")
    done = box.call([*calmtunes_command(), "report", "--config", str(box.config),
                     "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "matplotlib" in box.log.read_text(errors="replace")  # the plots were drawn
    box.assert_clean()


def test_the_technicians_commands_open_no_socket_and_leave_nothing(box):
    """What a technician types over SSH, against a device state with records in it: each
    reads what it shows and writes nothing (``status`` only knocks on the local socket)."""
    box.study("prefers-calm", 120)
    config = ["--config", str(box.config)]
    for args, codes in ((["sessions", *config], (0,)),
                        (["sessions", "--export", "csv", *config], (0,)),
                        (["listener", "show", *config], (0,)),
                        (["status", *config], (0, 69)),  # 69 (EX_UNAVAILABLE): no daemon
                        (["status", "--json", *config], (0, 69))):
        done = box.call([*calmtunes_command(), *args], timeout=60)
        assert done.returncode in codes, (args, done.returncode, done.stderr[-2000:])
        if args[0] == "sessions":  # the records were there to be read
            assert "prefers-calm" in done.stdout or done.stdout.count("\n") >= 2, done.stdout
        box.assert_clean()

# Debian's PortAudio is built with JACK: initialising it (import sounddevice) makes libjack open
# its port-metadata database (Berkeley DB files, no audio and nothing about the listener) in
# /dev/shm/jack_db-<uid>/, a path compiled into libjack that no setting moves. It is the one
# write outside the run's folders, tolerated here by name and described in docs/SOUP.md.
JACK_METADATA = Path("/dev/shm") / f"jack_db-{os.getuid()}"


@pytest.mark.slow
def test_selftest_opens_no_socket_and_leaves_nothing(box):
    base = box.base / "device-audio"  # the device's own audio backend: selftest probes PortAudio
    base.mkdir()
    box = Sandbox(base, audio="sounddevice")
    box.tolerated.append(JACK_METADATA)
    done = box.call([*calmtunes_command(), "selftest", "--config", str(box.config)])
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: no sensor or DAC on this machine
    assert "passed" in done.stdout, done.stdout
    assert "libportaudio.so" in box.log.read_text(errors="replace")  # PortAudio was loaded
    _assert_onnxruntime_loaded(box)
    box.assert_clean()


def test_the_jack_exception_is_only_the_metadata_folder():
    allowed = Allowed(folders=[JACK_METADATA], files=[])
    assert JACK_METADATA / "metadata.db" in allowed
    assert Path("/dev/shm") / "calmtunes-frames" not in allowed
    assert Path("/dev/shm") / f"jack_db-{os.getuid()}x" / "metadata.db" not in allowed


@pytest.mark.slow
def test_run_opens_no_socket_and_leaves_nothing(box):
    proc = box.start([*calmtunes_command(), "run", "--config", str(box.config)])
    try:
        loaded = box.wait_in_log(ORT_LOADED, proc, within_s=90)
        time.sleep(3)  # the observation itself: what the traced daemon does while it runs
        assert proc.poll() is None, box.stderr()[-3000:]
        code = box.stop(proc)
    finally:
        proc.kill()
    assert loaded, box.stderr()[-3000:]
    assert code == 0, box.stderr()[-3000:]
    box.assert_clean()
