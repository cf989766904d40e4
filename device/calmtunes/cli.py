"""The ``calmtunes`` command.

Exit statuses: 0 success; 1 a check failed (selftest) or the request was refused; 2 wrong usage;
69 the daemon is not running (status and other requests); 77 its socket may not be opened by
this user (not in the calmtunes group); 78 configuration error.
"""

from __future__ import annotations

import argparse
import collections
import errno
import json
import logging
import math
import os
import shlex
import sys
import time
from pathlib import Path

# One BLAS thread: the daemon's matrix products are small, and idle BLAS workers spinning on the
# Pi's cores only steal time from the audio thread. Must be set before numpy is first imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def limit_malloc_arenas(arenas: int = 2) -> None:
    """At most ``arenas`` glibc malloc arenas (as MALLOC_ARENA_MAX, which the unit also sets).

    glibc gives each thread that allocates its own arena, up to 8 per core; each keeps the
    high-water mark of its thread's churn (synthesis blocks, frames, analysis windows), which
    measured 5 MB of the daemon's RSS. Two arenas: the threads share, the lock is seldom
    contended (glibc's per-thread cache serves small blocks first). Must run before the threads
    start; nothing where the C library is not glibc."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return  # the environment's (the unit's) value rules; glibc read it at start
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 -- glibc only (musl has no mallopt arenas)
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def keep_openssl_out() -> None:
    """Keep OpenSSL's libcrypto out of the daemon's process and a render's (3.3 MB of RSS).

    numpy.random imports ``secrets``, which imports ``hmac`` and ``hashlib``, which load
    ``_hashlib`` and with it libcrypto, a 3.3 MB mapping of code the daemon never runs: it does no
    TLS and no cryptography, and its one digest (the generator manifest's and model's SHA-256)
    comes as exactly from CPython's own ``_sha256``, the fallback ``hashlib`` and ``hmac`` use
    where ``_hashlib`` cannot be imported (3 ms for the 0.65 MB model against 0.3). Must run
    before the first ``import hashlib``; a no-op where something has already loaded it."""
    if "hashlib" not in sys.modules:
        sys.modules.setdefault("_hashlib", None)  # None: `import _hashlib` raises ImportError


from calmtunes import __version__  # noqa: E402
from calmtunes import config as config_mod  # noqa: E402
from calmtunes.errors import EX_CONFIG, EX_NOPERM, EX_UNAVAILABLE, ConfigError  # noqa: E402

log = logging.getLogger("calmtunes")


def setup_logging(level: str = "info") -> None:
    """Logs go to stderr without timestamps: journald adds its own."""
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def sim_dirs() -> tuple[str, str]:
    """State and runtime folders for simulation on a workstation (never /var or /run).

    The runtime folder is under ``$XDG_RUNTIME_DIR`` (the user's own, 0700), else under the
    state folder in the user's home: never a guessable name in /tmp, which another user could
    have made first."""
    state = Path(_xdg("XDG_STATE_HOME") or Path.home() / ".local/state") / "calmtunes-sim"
    xdg_runtime = _xdg("XDG_RUNTIME_DIR")
    runtime = Path(xdg_runtime) / "calmtunes-sim" if xdg_runtime else state / "run"
    return str(state), str(runtime)


def _xdg(name: str) -> str | None:
    """An XDG base folder from the environment, or None: the XDG Base Directory specification
    makes a relative path invalid (it would name a folder under wherever the command ran)."""
    value = os.environ.get(name)
    return value if value and os.path.isabs(value) else None


def sim_sessions_hint(missing: Path, command: str) -> str:
    """Where a simulation's session records are, when ``missing`` (the sessions database the
    command looked for) does not exist and a ``calmtunes simulate`` run by this user left some:
    `simulate` keeps them in its own folder (:func:`sim_dirs`), never in the device's. "" when
    there are none or they are the ones looked for."""
    from calmtunes.sessions import DB_NAME

    try:
        sim = Path(sim_dirs()[0])
        if missing.parent.resolve() == sim.resolve() or not (sim / DB_NAME).is_file():
            return ""
    except (OSError, RuntimeError, KeyError):  # no home to look in, or not ours to look at
        return ""
    return (f"; a simulation's sessions are in {sim}: calmtunes {command} --state-dir "
            f"{shlex.quote(str(sim))}")


def load_config(path: str | None) -> tuple[config_mod.Config, str | None]:
    """The config at ``path`` (the default file if present, else the defaults).

    Every failure is a :class:`ConfigError` (exit status 78, one short message, no traceback):
    a failure that is not one is a fault in calmtunes' config code, but the file is still what
    the technician must look at, and systemd must still not restart the daemon in a loop."""
    try:
        if path is None and config_mod.DEFAULT_PATH.exists():
            path = str(config_mod.DEFAULT_PATH)
        return config_mod.load(path), path
    except ConfigError:
        raise
    except Exception as exc:
        where = path if path is not None else str(config_mod.DEFAULT_PATH)
        raise ConfigError(where, [
            f"could not be read: {type(exc).__name__}: {str(exc)[:200]} (a fault in calmtunes "
            f"itself, met on this file); compare the file with config.example.yaml and keep a "
            f"copy of it for the maintainer"]) from exc


def simulation_overlay(cfg: config_mod.Config,
                       args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """What ``simulate`` lays over the config, at start and at every reload: the emulated
    senses (``device.hardware: sim``) and the simulation folders (:func:`sim_dirs`) unless the
    config names its own ``device.state_dir``/``runtime_dir``."""
    state, runtime = sim_dirs()
    default = config_mod.DeviceConfig()
    if cfg.device.state_dir != default.state_dir:
        state = cfg.device.state_dir
    if cfg.device.runtime_dir != default.runtime_dir:
        runtime = cfg.device.runtime_dir
    overlay: dict[str, dict[str, object]] = {
        "device": {"hardware": "sim", "state_dir": state, "runtime_dir": runtime}}
    if getattr(args, "out", None):
        overlay["audio"] = {"backend": "wav", "wav_path": str(args.out), "realtime": True}
    sim: dict[str, object] = {}
    if getattr(args, "scenario", None):
        sim["scenario"] = args.scenario
    if getattr(args, "seed", None) is not None:
        # one seed for the whole session, as `calmtunes render --seed`: the simulated listener
        # and room, and the composer
        sim["seed"] = args.seed
        overlay["music"] = {"seed": args.seed}
    if sim:
        overlay["sim"] = sim
    return overlay


def simulation_config(cfg: config_mod.Config, args: argparse.Namespace) -> config_mod.Config:
    """The config ``simulate`` runs on (:func:`simulation_overlay` applied and resolved)."""
    from calmtunes.hardware import resolve

    return resolve(cfg.replace(**simulation_overlay(cfg, args)))


# -- commands ---------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    cfg, path = load_config(args.config)  # first: a bad config exits 78 at once
    limit_malloc_arenas()
    keep_openssl_out()
    from calmtunes.daemon import Daemon, with_systemd_dirs

    setup_logging(cfg.device.log_level)
    if path is None:
        log.warning("no config file (%s); running on defaults", config_mod.DEFAULT_PATH)
    cfg = with_systemd_dirs(cfg)
    daemon = Daemon(cfg, path)
    daemon.install_signal_handlers()
    return daemon.run()


def audio_output(cfg: config_mod.Config) -> str:
    """Where the config sends the sound, in words."""
    a = cfg.audio
    if a.backend == "wav":
        return a.wav_path
    if a.backend == "null":
        return "nowhere (audio.backend 'null')"
    return f"the sound device matching {a.device!r}" if a.device else "the default sound device"


def cmd_simulate(args: argparse.Namespace) -> int:
    cfg, path = load_config(args.config)
    limit_malloc_arenas()
    keep_openssl_out()
    overlay = simulation_overlay(cfg, args)
    shown = simulation_config(cfg, args)
    setup_logging(shown.device.log_level)
    if _preset_refused("simulate", args.preset, shown):
        return 2
    refused = _foreign_file(args.out, "WAV", "simulate", "--out")
    if refused:
        return refused
    if args.listener is not None or args.nights is not None:
        return _simulate_nights(cfg, args)
    if args.state_dir is not None:  # said, not ignored: the run would not go where asked
        print("calmtunes simulate: --state-dir is for --listener and --nights; a plain "
              "simulation keeps its state in $XDG_STATE_HOME/calmtunes-sim (set XDG_STATE_HOME "
              "to move it)", file=sys.stderr)
        return 2
    from calmtunes.sim.closed_loop import LISTENERS
    from calmtunes.sim.physiology import SCENARIOS

    if shown.sim.scenario not in LISTENERS and shown.sim.scenario not in SCENARIOS:
        names = ", ".join(sorted({*LISTENERS, *SCENARIOS}))
        print(f"calmtunes simulate: no scenario {shown.sim.scenario!r} (have: {names}); "
              "check --scenario or sim.scenario", file=sys.stderr)
        return 2
    if args.virtual_clock:
        if args.duration is None or not args.out:
            print("calmtunes simulate: --virtual-clock needs --duration SECONDS and --out FILE "
                  "(virtual time cannot play on a sound card)", file=sys.stderr)
            return 2
        from calmtunes.render import run_session

        if not _fits_a_wav(args.duration, shown.audio.sample_rate, "simulate", "--duration"):
            return 2

        log.info("simulation on a virtual clock: scenario %r, %.0f s into %s",
                 shown.sim.scenario, args.duration, args.out)
        try:
            # today's date on the records (the state persists: a 1970 session would be pruned
            # as 56 years old by the next run); the music does not read the wall clock
            summary = run_session(cfg, args.duration, args.out, preset=args.preset,
                                  overlay=overlay, config_path=path, control=True, persist=True,
                                  epoch=float(int(time.time())))
        except OSError as exc:  # HardwareError: the file was not written
            print(f"calmtunes simulate: {_os_error(exc)}", file=sys.stderr)
            return 1
        print(f"wrote {args.out}: {summary['seconds']:.0f} s by the {summary['composer']} "
              f"composer")
        return 0
    from calmtunes.daemon import Daemon

    log.info("simulation: scenario %r, audio to %s", shown.sim.scenario, audio_output(shown))
    daemon = Daemon(cfg, path, overlay=overlay, preset=args.preset)
    daemon.install_signal_handlers()
    return daemon.run(duration=args.duration)


def _simulate_nights(cfg: config_mod.Config, args: argparse.Namespace) -> int:
    """``simulate --listener P --nights N --duration S --state-dir DIR --virtual-clock``: the
    personaliser learns a simulated listener over N sessions on one device state. Each night the
    real personaliser chooses, the real conductor leads, the readings come through the real
    pulse path (emulated MAX30102, driver, analyser) and the real session recorder keeps the
    record; no sound is synthesised (calmtunes.sim.study)."""
    from calmtunes.sim.profiles import PROFILES
    from calmtunes.sim.study import run_study

    problems = []
    if args.listener not in PROFILES:
        problems.append(f"--listener {args.listener!r}: choose one of {', '.join(PROFILES)}")
    if not args.nights or args.nights < 1:
        problems.append("--nights N (1 or more) is needed with --listener")
    if args.duration is None or args.duration < 60:
        problems.append("--duration SECONDS (60 or more: a night's session) is needed")
    if not args.state_dir:
        problems.append("--state-dir DIR is needed: the device state the nights share")
    if not args.virtual_clock:
        problems.append("--virtual-clock is needed: nights run as fast as the CPU allows")
    for name in ("out", "preset", "scenario"):
        if getattr(args, name) is not None:  # the study synthesises no sound, its arms choose
            problems.append(f"--{name} has no meaning with --listener (no sound is made; the "
                            "personaliser chooses the presets and the profile is the listener)")
    if args.state_dir and os.path.exists(args.state_dir) and not os.path.isdir(args.state_dir):
        problems.append(f"--state-dir {args.state_dir} is not a folder; name a folder (it is "
                        "made when missing)")
    if problems:
        for p in problems:
            print(f"calmtunes simulate: {p}", file=sys.stderr)
        return 2
    setup_logging(cfg.device.log_level)
    try:
        results = run_study(cfg.replace(care={"enabled": True}), PROFILES[args.listener],
                            args.nights, args.duration, seed=args.seed or 0,
                            state_dir=args.state_dir, ppg=True)
    except OSError as exc:  # the state folder cannot be made or written
        where = exc.filename or args.state_dir
        print(f"calmtunes simulate: cannot use {where}: {exc.strerror or exc}; choose a "
              "writable --state-dir", file=sys.stderr)
        return 1
    composers = ", ".join(sorted({r.composer for r in results}))
    print(f"{args.nights} nights of {args.duration:.0f} s, listener {args.listener!r}, "
          f"state in {args.state_dir}; music written by the {composers} composer "
          "(no sound synthesised):")
    print("night  arm                reward  why")
    for r in results:
        reward = "—" if r.response.reward is None else f"{r.response.reward:+.2f}"
        print(f"{r.night + 1:5d}  {r.arm:<18} {reward:>6}  {r.why[:60]}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    cfg, _ = load_config(args.config)
    keep_openssl_out()  # as the daemon: a render loads the same generator and numpy.random
    from calmtunes.render import render_offline

    setup_logging(cfg.device.log_level)
    music: dict = {}
    sim: dict = {}
    if args.seed is not None:
        # one seed for the whole session: the composer, and with --scenario the simulated
        # listener and room (as scripts/bench_music seeds its renders)
        music["seed"] = args.seed
        sim["seed"] = args.seed
    if _preset_refused("render", args.preset, cfg):
        return 2
    if args.scenario is not None:
        from calmtunes.sim.listener import SCENARIOS

        if args.scenario not in SCENARIOS:
            print(f"calmtunes render: no scenario {args.scenario!r} (have: "
                  f"{', '.join(SCENARIOS)})", file=sys.stderr)
            return 2
    if not _fits_a_wav(args.minutes * 60.0, cfg.audio.sample_rate, "render", "--minutes"):
        return 2
    refused = (_foreign_file(args.out, "WAV", "render", "--out")
               or _foreign_file(args.midi, "MIDI", "render", "--midi"))
    if refused:
        return refused
    if args.midi is not None and _same_file(args.midi, args.out):
        print(f"calmtunes render: --midi and --out name the same file ({args.out}): the notes "
              "would overwrite the sound; give the MIDI file its own name (e.g. "
              f"{Path(args.out).with_suffix('.mid')})", file=sys.stderr)
        return 2
    if _folder_refused(args.midi, "MIDI", "render"):
        return 1
    cfg = cfg.replace(music=music, sim=sim)

    def progress(fraction: float) -> None:
        if sys.stderr.isatty() or args.progress:
            bar = "#" * int(fraction * 40)
            print(f"\rrendering [{bar:<40}] {fraction * 100:5.1f}%", end="", file=sys.stderr)

    try:
        summary = render_offline(cfg, args.minutes, args.out, preset=args.preset,
                                 scenario=args.scenario, midi=args.midi, progress=progress)
    except OSError as exc:  # the WAV or the MIDI file could not be written
        if sys.stderr.isatty() or args.progress:
            print(file=sys.stderr)
        print(f"calmtunes render: {_os_error(exc)}", file=sys.stderr)
        return 1
    if sys.stderr.isatty() or args.progress:
        print(file=sys.stderr)
    print(f"wrote {args.out}: {summary['seconds']:.0f} s by the {summary['composer']} composer")
    if args.midi:
        print(f"wrote {args.midi}: {summary['midi_notes']} notes (melody, harmony pad, harmony "
              "piano and bass tracks)")
    trace = summary.get("trace")
    if trace is not None:
        print(f"closed loop, listener {args.scenario!r}:")
        print(" min  tempo plan  pacing   listener HR  breathing  stress  conductor")
        for i in range(0, len(trace.t), 60):
            print(f"{trace.t[i] / 60:4.0f}  {trace.tempo_plan[i]:6.1f} bpm"
                  f"  {trace.breath_plan[i]:4.1f}/min  {trace.hr[i]:6.1f} bpm"
                  f"  {trace.br[i]:5.1f}/min  {trace.stress[i]:6.2f}"
                  f"  {trace.mode[i]}")
    return 0


def _fits_a_wav(seconds: float, sample_rate: int, command: str, option: str) -> bool:
    """Whether one WAV file holds ``seconds`` at ``sample_rate``; if not, says so."""
    from calmtunes.audio.sinks import wav_max_frames

    most = wav_max_frames() / sample_rate
    if seconds <= most:
        return True
    shown = f"{int(most // 60)} minutes" if option == "--minutes" else f"{int(most)} s"
    print(f"calmtunes {command}: {option} asks for more than one WAV file holds at "
          f"{sample_rate} Hz (at most {shown}); ask for less", file=sys.stderr)
    return False


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (the same path, or links to one file, made yet or not:
    a link to a file not there yet is followed to where it would be)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _folder_refused(path: str | None, what: str, command: str) -> bool:
    """Whether the folder ``path`` is to be written in is missing or not writable: said now,
    not after a render of many minutes (whose other file would then stand alone)."""
    if path is None or (os.path.exists(path) and not os.path.isfile(path)):
        return False  # /dev/null, a FIFO: written to as they are (a folder is said later)
    folder = os.path.dirname(os.path.realpath(path))  # where a link's file is written
    if not os.path.isdir(folder):
        problem = "there is no such folder"
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = "this user may not write in that folder"
    else:
        return False
    print(f"calmtunes {command}: cannot write the {what} file {path}: {problem} ({folder})",
          file=sys.stderr)
    return True


def _preset_refused(command: str, preset: str | None, cfg: config_mod.Config) -> bool:
    """Whether ``--preset`` names no preset of the config, or one its clinician forbade (a
    person's --preset is bound as a press is); says why on stderr."""
    if preset is None:
        return False
    if preset not in cfg.music.presets:
        print(f"calmtunes {command}: no preset {preset!r} (have: "
              f"{', '.join(cfg.music.presets)})", file=sys.stderr)
        return True
    from calmtunes.commands import check

    refused = check("preset", preset, cfg).error
    if refused:
        print(f"calmtunes {command}: {refused}", file=sys.stderr)
    return bool(refused)


MAGIC = {"WAV": b"RIFF", "MIDI": b"MThd"}  # how a file of each kind starts


def _foreign_file(path: str | None, kind: str, command: str, option: str) -> int:
    """0 when ``path`` may be written: nothing there, an empty file, or a ``kind`` file (an
    output replaces an earlier output, never another file: ``--out
    /var/lib/calmtunes/sessions.db``, a slip of the tab key under sudo, cost the records).
    Otherwise says why on stderr: 1 for a folder, 2 for another file."""
    if not path:
        return 0
    try:
        if os.path.isdir(path):
            print(f"calmtunes {command}: cannot write {path}: Is a directory (name a file "
                  f"in it for {option})", file=sys.stderr)
            return 1
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            return 0
        with open(path, "rb") as f:
            if f.read(4) == MAGIC[kind]:
                return 0
    except OSError:
        return 0  # unreadable or gone: writing it says why
    print(f"calmtunes {command}: {option} {path} is there and is not a {kind} file; it is "
          f"replaced only by a file of its kind: name a new file", file=sys.stderr)
    return 2


def _os_error(exc: OSError) -> str:
    """One line for a file that could not be written: which, and why."""
    if exc.filename is not None and exc.strerror:
        return f"cannot write {exc.filename}: {exc.strerror}"
    return str(exc)


def _socket_candidates(args: argparse.Namespace) -> list[Path]:
    from calmtunes.control import socket_path

    if args.runtime_dir:
        return [socket_path(args.runtime_dir)]
    paths = []
    # the config read only to find the socket: what is wrong with the file is the daemon's to
    # say (a reload's reply), not said here as if the client were running on it
    quiet = logging.getLogger(config_mod.__name__)
    was, quiet.disabled = quiet.disabled, True
    try:
        cfg, _ = load_config(args.config)
        paths.append(socket_path(cfg.device.runtime_dir))
    except ConfigError:
        paths.append(socket_path(config_mod.DeviceConfig().runtime_dir))
    finally:
        quiet.disabled = was
    paths.append(socket_path(sim_dirs()[1]))
    return paths


def _request(args: argparse.Namespace, cmd: str, **extra) -> dict | None:

    from calmtunes.control import BUSY, request

    errors = []
    args.denied = False  # a socket there that this user may not open (the caller's exit status)
    for path in _socket_candidates(args):
        try:
            for wait in (0.2, 0.5, 1.0, None):  # a busy daemon is asked again, a few times
                reply = request(path, cmd, **extra)
                if not isinstance(reply, dict):
                    raise ValueError(f"a {type(reply).__name__}, not an object")
                if reply.get("error") != BUSY or wait is None:
                    return reply
                time.sleep(wait)
        except BlockingIOError:  # it runs, but its queue of connections stayed full
            return {"ok": False, "error": BUSY}
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
            args.denied |= isinstance(exc, PermissionError)
        except (ValueError, RecursionError) as exc:  # not JSON: not our daemon, cut off
            errors.append(f"{path}: the reply is not JSON ({str(exc)[:200]})")
    if args.denied:
        print("calmtunes: this user may not open the daemon's socket:\n  " + "\n  ".join(errors)
              + "\n  only root and the calmtunes group may; a technician is added with "
              "`sudo usermod -aG calmtunes USER` (then log in again)", file=sys.stderr)
    else:
        print("calmtunes: the daemon is not running (or its socket is not readable by you):\n  "
              + "\n  ".join(errors)
              + "\n  check `systemctl status calmtunes`; are you in the calmtunes group?",
              file=sys.stderr)
    return None


def _unreachable(args: argparse.Namespace) -> int:
    """The exit status when no daemon answered: 77 when a socket was there that this user may
    not open (a daemon may well be running), else 69."""
    return EX_NOPERM if getattr(args, "denied", False) else EX_UNAVAILABLE


def cmd_status(args: argparse.Namespace) -> int:
    reply = _request(args, "status")
    if reply is None:
        _print_fault(args)
        return _unreachable(args)
    if args.json:
        print(json.dumps(reply, indent=2))
        return 0 if reply.get("ok") else 1
    if not reply.get("ok"):
        print(f"calmtunes: {reply.get('error')}", file=sys.stderr)
        return 1
    try:
        text = format_status(reply)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        # not the shape this version's daemon answers with: say so, and show it as it is
        print(f"calmtunes: the daemon's status is not in the form this calmtunes reads "
              f"({type(exc).__name__}: {str(exc)[:120]}); it is shown as it came "
              "(`calmtunes status --json`)", file=sys.stderr)
        print(json.dumps(reply, indent=2)[:20000])
        return 1
    print(text)
    return 0


def _print_fault(args: argparse.Namespace) -> None:
    """The note calmtunes-failed.service left, if systemd gave up on the daemon."""
    from calmtunes.fault import format_fault, read_fault

    try:
        state_dir = load_config(args.config)[0].device.state_dir
    except ConfigError:
        state_dir = config_mod.DeviceConfig().state_dir
    note = read_fault(state_dir)
    if note is not None:
        print(format_fault(note), file=sys.stderr)


def format_status(s: dict) -> str:
    def fmt(v, unit="", nd=0):
        return "—" if v is None else f"{v:.{nd}f}{unit}"

    pulse = s.get("pulse") or {}
    scene = s.get("scene") or {}
    up = s.get("uptime_s", 0)
    finger = "finger on" if pulse.get("finger") else "no finger"
    if s.get("health_hidden"):
        pulse_line = f"pulse      {finger}; {s['health_hidden']}"
    else:
        pulse_line = (f"pulse      {finger}, HR {fmt(pulse.get('hr_bpm'), ' bpm')}, "
                      f"quality {fmt(pulse.get('quality'), '', 2)}, "
                      f"breathing {fmt(pulse.get('breathing_rate'), '/min', 1)}, "
                      f"stress {fmt(pulse.get('stress'), '', 2)}")
    audio = s.get("components", {}).get("audio", {})
    unheard = audio.get("heard") is False  # a daemon from before the flag says nothing
    playing = "paused"
    if s.get("playing"):
        playing = "playing, not heard: no audio output" if unheard else "playing"
    lines = [
        f"calmtunes {s.get('version')}  up {int(up // 3600)}h{int(up % 3600 // 60):02d}m",
        f"preset     {s.get('preset')}  ({playing}), volume {s.get('volume_db', 0):+.1f} dB",
        pulse_line,
        f"scene      {scene.get('label', '—')}" + (
            f", {scene.get('people')} people, light {fmt(scene.get('luminance'), '', 2)}"
            if scene else ""),
    ]
    closed = (" not open (the music keeps its time unheard and fades in when the output is "
              "back; the audio component's line says why)") if unheard else ""
    lines.append(f"audio      {audio.get('output', '—')}{closed}, underruns "
                 f"{audio.get('underruns', '—')}")
    care = s.get("care")
    if isinstance(care, dict):
        lines.append(f"care       {format_care(care)}")
    conf = s.get("config") or {}
    if conf:
        lines.append(f"config     {conf.get('path') or 'defaults'}, generation "
                     f"{conf.get('generation')}, hardware {conf.get('hardware')}")
    restarts = s.get("restarts_unclean")
    if restarts is not None:
        lines.append(f"restarts   {restarts['total']} unclean ({restarts['last_24h']} in the "
                     f"last 24 h)")
    for problem in s.get("records") or []:
        lines.append(f"records    {problem}")
    lines.append("components:")
    for name, c in s.get("components", {}).items():
        detail = f"  {c['detail']}" if c.get("detail") else ""
        lines.append(f"  {name:<10} {c.get('state')}{detail}")
    return "\n".join(lines)


def format_care(care: dict) -> str:
    """The personaliser in a line: what plays and why, the clinician's pin and forbids."""
    if care.get("enabled") is False and not care.get("pinned_arm"):
        text = "personaliser off (care.enabled: false)"
    elif care.get("problem") and care.get("arm") is None:
        text = f"personaliser: {care['problem']}"
    else:
        who = f"listener {care['listener']}, " if care.get("listener") else ""
        arm = care.get("arm") or "no session playing"
        why = f" — {care['why']}" if care.get("why") else ""
        text = f"{who}arm {arm}{why}"
        if care.get("problem"):
            text += f"; problem: {care['problem']}"
    oversight = []
    if care.get("pinned_arm"):
        oversight.append(f"pinned {care['pinned_arm']}")
    if care.get("forbidden_arms"):
        oversight.append("forbidden " + ", ".join(map(str, care["forbidden_arms"])))
    return text + (f" (clinician: {'; '.join(oversight)})" if oversight else "")


def cmd_reload(args: argparse.Namespace) -> int:
    """Ask the daemon to reload its config file; say what it did (exit 1 if refused)."""
    reply = _request(args, "reload")
    if reply is None:
        return _unreachable(args)
    config = reply.get("config") or {}
    last = config.get("last_reload") or {}
    if not reply.get("ok"):
        print(f"calmtunes: reload refused, nothing changed: {reply.get('error')}",
              file=sys.stderr)
        return 1
    parts = last.get("parts") or {}
    done = "; ".join(f"{k} {v}" for k, v in parts.items()) or "no part's settings changed"
    print(f"config generation {config.get('generation')}: {done}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    extra = {"arg": args.value} if getattr(args, "value", None) is not None else {}
    reply = _request(args, args.request, **extra)
    if reply is None:
        return _unreachable(args)
    if not reply.get("ok"):
        print(f"calmtunes: {reply.get('error')}", file=sys.stderr)
        return 1
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    """List or export read-only (``?mode=ro``: nothing is written); ``--forget`` needs the
    daemon's user, since the technician group may only read the records."""
    import sqlite3

    from calmtunes.sessions import (
        DB_NAME,
        SessionStore,
        count_restarts,
        format_restarts,
        format_rows,
        read_error,
    )

    cfg, _ = load_config(args.config)
    if args.state_dir:
        cfg = cfg.replace(device={"state_dir": args.state_dir})
    path = Path(cfg.device.state_dir) / DB_NAME
    try:
        if path.parent.exists() and not path.parent.is_dir():
            print(f"calmtunes sessions: the state folder {path.parent} is not a folder; check "
                  "--state-dir or device.state_dir", file=sys.stderr)
            return 1
        exists = path.exists()
    except PermissionError as exc:  # the state folder is the daemon's and its group's only
        print(f"calmtunes sessions: {read_error(path, exc)}", file=sys.stderr)
        return 1
    if not exists:
        print(f"no sessions recorded ({path} does not exist){sim_sessions_hint(path, 'sessions')}")
        return 0
    if args.forget:
        if _daemon_keeps(path.parent, cfg):
            print(f"calmtunes sessions --forget: the daemon is running on {path.parent} and "
                  "would write the playing session and its listener back; stop it first "
                  "(sudo systemctl stop calmtunes), forget, then start it again",
                  file=sys.stderr)
            return 1
        return _forget_sessions(path, cfg.sessions.retention_days, args.yes)
    try:
        store = SessionStore(path, cfg.sessions.retention_days, readonly=True)
    except (OSError, sqlite3.Error) as exc:
        print(f"calmtunes sessions: {read_error(path, exc)}", file=sys.stderr)
        return 1
    try:
        if args.export == "csv":
            store.export_csv(sys.stdout)
        else:
            print(format_rows(store.rows()))
            print(format_restarts(count_restarts(store.unclean_stops(), time.time())))
        if store.unreadable:
            print(f"calmtunes sessions: {store.unreadable} session record(s) in {path} have no "
                  "usable start time and are not shown (the file was changed outside "
                  "calmtunes)", file=sys.stderr)
        return 0
    except sqlite3.Error as exc:
        print(f"calmtunes sessions: {read_error(path, exc)}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _daemon_keeps(state_dir: Path, cfg: config_mod.Config) -> bool:
    """Whether a daemon that runs keeps its records in ``state_dir``: the device's (the
    config's folders) or a simulation's."""
    from calmtunes.control import in_use, socket_path

    here = os.path.realpath(state_dir)
    for state, runtime in ((cfg.device.state_dir, cfg.device.runtime_dir), sim_dirs()):
        if os.path.realpath(state) == here and in_use(socket_path(runtime)):
            return True
    return False


def _forget_sessions(path: Path, retention_days: int, yes: bool) -> int:
    import sqlite3

    from calmtunes.sessions import SessionStore

    refused = (f"calmtunes sessions --forget: {path} may only be changed by the daemon's user; "
               f"run it as that user: sudo -u calmtunes calmtunes sessions --forget")
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        print(refused, file=sys.stderr)
        return 1
    try:
        store = SessionStore(path, retention_days)
    except (OSError, sqlite3.Error) as exc:
        print(f"calmtunes sessions: cannot open {path}: {exc}", file=sys.stderr)
        return 1
    from calmtunes.care.store import CareStore

    care = CareStore(path.parent)  # the listeners' nights: rewards and arms of these sessions
    listeners = (len(list(care.listeners_dir.glob("*.json")))
                 if care.listeners_dir.is_dir() else 0)
    try:
        n = len(store.rows())
        if not yes:
            if not sys.stdin.isatty():
                print("calmtunes sessions --forget: not a terminal; add --yes to confirm",
                      file=sys.stderr)
                return 2
            answer = input(f"delete all {n} session record(s) in {path}, and the personaliser's "
                           f"record of {listeners} listener(s) (their nights and what was "
                           "learnt)? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return 1
        try:
            print(f"deleted {store.forget()} session record(s)")
        except sqlite3.Error as exc:
            print(f"{refused} ({exc})", file=sys.stderr)
            return 1
        try:
            forgotten = care.forget()
        except OSError as exc:
            print(f"calmtunes sessions --forget: the session records are deleted, but not the "
                  f"personaliser's in {care.dir}: {exc.strerror or exc}; {refused}",
                  file=sys.stderr)
            return 1
        print(f"deleted the personaliser's record of {forgotten} listener(s); the next session "
              "starts a new listener")
        return 0
    finally:
        store.close()


def cmd_report(args: argparse.Namespace) -> int:
    """The clinician's report: one self-contained HTML file (see :mod:`calmtunes.report`)."""
    cfg, _ = load_config(args.config)
    from calmtunes.report import ReportError, write_report

    state_dir = args.state_dir or cfg.device.state_dir
    try:
        size = write_report(cfg, state_dir, args.out, last=args.last, session_id=args.session)
    except ReportError as exc:
        hint = ""
        if exc.missing is not None:
            hint = sim_sessions_hint(exc.missing, f"report --out {shlex.quote(str(args.out))}")
        print(f"calmtunes report: {exc}{hint}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"calmtunes report: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({size / 1024:.0f} KiB); open it in any browser")
    return 0


def cmd_listener(args: argparse.Namespace) -> int:
    """``listener new``: a new listener at this bedside, whose belief starts afresh (the
    previous listener's record stays on the device); ``listener show``: who, and what was
    learnt. The daemon takes a new listener at its next session start."""
    cfg, _ = load_config(args.config)
    from calmtunes.care.personaliser import bandit_for
    from calmtunes.care.store import CareStore

    store = CareStore(args.state_dir or cfg.device.state_dir)
    if args.action == "new":
        try:
            listener = store.new_listener()
        except PermissionError as exc:
            print(f"calmtunes listener new: {exc.filename} may only be changed by the daemon's "
                  "user: sudo -u calmtunes calmtunes listener new", file=sys.stderr)
            return 1
        except OSError as exc:  # the state folder is missing, or a file stands in its place
            print(f"calmtunes listener new: cannot write the care record in {store.dir}: "
                  f"{exc.strerror or exc}; check --state-dir (or device.state_dir)",
                  file=sys.stderr)
            return 1
        print(f"new listener {listener}: the personaliser starts afresh from the next session")
        return 0
    try:
        listener = store.peek_current()
    except PermissionError as exc:
        print(f"calmtunes listener: cannot read {exc.filename or store.dir}: {exc.strerror} "
              "(are you in the calmtunes group?)", file=sys.stderr)
        return 1
    if listener is None:
        if store.current_path.exists() or store.current_path.is_symlink():
            others = sorted(p.stem for p in store.listeners_dir.glob("*.json"))
            print(f"calmtunes listener: {store.current_path} does not name a listener (damaged "
                  "or changed by hand): the daemon keeps it aside and starts a new listener at "
                  "its next session" + (f"; the records kept: {', '.join(others[-5:])}"
                                        if others else ""), file=sys.stderr)
            return 1
        print(f"no listener recorded in {store.dir}")
        return 0
    record = store.load(listener, set_aside=False)
    if record.problem:
        print(f"calmtunes listener: {record.problem}", file=sys.stderr)
        if not record.nights:
            return 1
    from calmtunes.care.arms import parse_arm
    from calmtunes.care.bandit import is_forbidden

    rewarded = sum(n.reward is not None for n in record.nights)
    print(f"listener {listener}: {len(record.nights)} nights, {rewarded} with a reward "
          "(the belief learns from those)")
    played = collections.Counter(n.arm for n in record.nights)
    for b in bandit_for(cfg, record).beliefs():
        marks = []
        if is_forbidden(parse_arm(b.arm), cfg.care.forbidden_arms):
            marks.append("forbidden")
        if b.arm == cfg.care.pinned_arm:
            marks.append("pinned")
        print(f"  {b.arm:<18} expected reward {b.mean:+.2f} ± {b.sd:.2f}  ({b.nights} rewarded "
              f"of {played[b.arm]} nights){'  ' + ', '.join(marks) if marks else ''}")
    return 0


def cmd_fault(args: argparse.Namespace) -> int:
    """What calmtunes-failed.service runs when systemd gives up on the daemon: the fault note
    and the LEDs' fault pattern (see :mod:`calmtunes.fault`), until stopped."""
    import signal
    import threading

    from calmtunes.fault import FaultLights, reason_for, record_fault

    setup_logging("info")
    # First: a stop (systemd starting the daemon again) while the note is being written must
    # end this cleanly (exit 0), not by the signal's default action.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        cfg, _ = load_config(args.config)
    except ConfigError as exc:  # the very reason we may be here: carry on with the defaults
        log.warning("configuration error, so the default state folder and LED pins are "
                    "used here: %s", "; ".join([exc.source, *exc.problems]))
        cfg = config_mod.Config()
    from calmtunes.daemon import with_systemd_dirs

    cfg = with_systemd_dirs(cfg)  # the unit's StateDirectory=, where the daemon keeps its state
    env = os.environ
    result = env.get("MONITOR_SERVICE_RESULT")
    reason = args.reason or reason_for(result, env.get("MONITOR_EXIT_CODE"),
                                       env.get("MONITOR_EXIT_STATUS"))
    log.error("calmtunes has stopped: %s; showing the fault on the LEDs", reason)
    try:
        record_fault(cfg.device.state_dir, reason, result)
    except OSError as exc:
        log.error("cannot write the fault note in %s (%s)", cfg.device.state_dir, exc)
    if cfg.panel.backend == "none" or stop.is_set():
        return 0
    try:
        lights = FaultLights(cfg)
    except Exception as exc:  # no GPIO access: the note is still there
        log.error("cannot show the fault on the LEDs (%s)", exc)
        return 0
    if args.duration is not None:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    try:
        lights.run(stop)
    finally:
        lights.close()
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    from calmtunes.selftest import format_table, selftest

    path = args.config
    if path is None and config_mod.DEFAULT_PATH.exists():
        path = str(config_mod.DEFAULT_PATH)
    results = selftest(path)  # a bad config is a FAIL row, not the end of the test
    print(format_table(results))
    return 1 if any(r.ok is False for r in results) else 0


# -- parser -------------------------------------------------------------------------------------
MAX_DURATION_S = 366 * 86400.0  # s: a year; render --minutes has its own, smaller bound


def count(text: str) -> int:
    """A whole number, 0 or more (``--last -3`` would have shown all but the first three)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"needs a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"needs 0 or more, got {value}")
    return value


def positive(text: str) -> float:
    """A length of time on the command line: a finite number above 0 (not nan, inf, -1)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"needs a finite number above 0, got {text[:40]!r}")
    if value > MAX_DURATION_S:  # past what a timer can wait (threading.TIMEOUT_MAX)
        raise argparse.ArgumentTypeError(f"at most {MAX_DURATION_S:.0f} (a year), got "
                                         f"{text[:40]!r}")
    return value


def path_arg(text: str) -> str:
    """A file or folder on the command line: not empty (an empty --state-dir meant the device's
    own folder, and an empty --out a confusing "cannot write : …")."""
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a path, got an empty one")
    if "\0" in text:
        raise argparse.ArgumentTypeError("a path cannot hold a NUL byte")
    return text


def folder_arg(text: str) -> str:
    """A folder on the command line (--state-dir, --runtime-dir), made absolute: the config
    takes only absolute folders, and "state" typed in a shell means the one where it stands."""
    return os.path.abspath(path_arg(text))


def seed(text: str) -> int:
    """A seed on the command line: a whole number, 0 or more (music.seed's and sim.seed's
    range)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"needs a whole number, 0 or more, got {text[:40]!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"needs a whole number, 0 or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="calmtunes",
        description="The bedside calming-music device: its daemon, and the commands a "
        "technician or clinician uses over SSH.",
        epilog="Exit statuses: 0 success; 1 a check failed (selftest) or the request was "
        "refused; 2 wrong usage; 69 the daemon is not running; 77 its socket may not be "
        "opened by this user (not in the calmtunes group); 78 configuration error. "
        "`calmtunes COMMAND --help` says more of each command.")
    p.add_argument("--version", action="version", version=f"calmtunes {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", help=f"config file (default {config_mod.DEFAULT_PATH} if present)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add = sub.add_parser

    def add_parser(name: str, **kw):
        return _add(name, parents=[common], **kw)

    sub.add_parser = add_parser  # every command takes --config

    s = sub.add_parser("run", help="run the daemon (what systemd starts)")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("simulate", help="run the whole daemon on the emulated sensor and camera")
    s.add_argument("--duration", type=positive, help="stop after this many seconds")
    s.add_argument("--scenario", help="simulated listener (e.g. stressed, rest, sleepy)")
    s.add_argument("--seed", type=seed, help="seed of the simulated listener and room and of "
                   "the composer (as render --seed)")
    s.add_argument("--out", type=path_arg, help="write to this WAV file instead of the sound card")
    s.add_argument("--preset", help="start on this preset")
    s.add_argument("--virtual-clock", action="store_true",
                   help="run on a virtual clock, as fast as the CPU allows (needs --duration and "
                   "--out); the same as `calmtunes render` for the same scenario and seed")
    s.add_argument("--listener", metavar="PROFILE",
                   help="a simulated listener with hidden preferences (prefers-sleep, "
                   "prefers-calm, ...) for a study of the personaliser; with --nights")
    s.add_argument("--nights", type=int,
                   help="with --listener: this many sessions of --duration s in a row on one "
                   "device state (--state-dir), on the virtual clock")
    s.add_argument("--state-dir", type=folder_arg,
                   help="the device state for --nights (sessions.db, care/)")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("render", help="render music offline to a WAV file (no hardware)")
    s.add_argument("--minutes", type=positive, required=True)
    s.add_argument("--out", type=path_arg, required=True)
    s.add_argument("--preset")
    s.add_argument("--scenario", help="close the loop with a simulated listener (stressed, rest, "
                   "sleepy, startled, unresponsive, restless)")
    s.add_argument("--seed", type=seed, help="seed of the composer and, with --scenario, of "
                   "the simulated listener and room: the same seed gives the same samples")
    s.add_argument("--midi", type=path_arg, help="also write the notes played to this MIDI file")
    s.add_argument("--progress", action="store_true",
                   help="show the progress bar even when not a terminal")
    s.set_defaults(func=cmd_render)

    s = sub.add_parser("status", help="ask the running daemon how it is")
    s.add_argument("--json", action="store_true")
    s.add_argument("--runtime-dir", type=folder_arg, help="where the daemon's socket is")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("reload", help="make the running daemon read its config file again "
                       "(as SIGHUP); says what each part did, or why it was refused")
    s.add_argument("--runtime-dir", type=folder_arg)
    s.set_defaults(func=cmd_reload)

    s = sub.add_parser("preset", help="switch the running daemon to a preset")
    s.add_argument("value", metavar="NAME")
    s.add_argument("--runtime-dir", type=folder_arg)
    s.set_defaults(func=cmd_send, request="preset")

    s = sub.add_parser("sessions", help="list the recorded sessions (summaries only)")
    s.add_argument("--export", choices=("csv",), help="write every session as CSV to stdout")
    s.add_argument("--forget", action="store_true", help="delete every session record")
    s.add_argument("--yes", action="store_true", help="with --forget: do not ask")
    s.add_argument("--state-dir", type=folder_arg,
                   help="where sessions.db is (default: the config's)")
    s.set_defaults(func=cmd_sessions)

    s = sub.add_parser("report", help="the clinician's report: one self-contained HTML file")
    s.add_argument("--state-dir", type=folder_arg,
                   help="where sessions.db and care/ are (default: the config's)")
    which = s.add_mutually_exclusive_group()
    which.add_argument("--last", type=count, default=5, metavar="K",
                       help="show the last K sessions in detail (default 5; 0 for all)")
    which.add_argument("--session", type=int, metavar="ID", help="show this session in detail")
    s.add_argument("--out", type=path_arg, required=True, metavar="F.html")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("listener", help="start a new listener (fresh personalisation) or show "
                       "what was learnt")
    s.add_argument("action", choices=("new", "show"))
    s.add_argument("--state-dir", type=folder_arg, help="where care/ is (default: the config's)")
    s.set_defaults(func=cmd_listener)

    s = sub.add_parser("fault", help="show that systemd gave up on the daemon: LEDs and a "
                       "note for `status` (run by calmtunes-failed.service)")
    s.add_argument("--reason", help="the words to record (default: from $MONITOR_SERVICE_RESULT "
                   "and $MONITOR_EXIT_STATUS, which systemd sets)")
    s.add_argument("--duration", type=positive, help="stop after this many seconds")
    s.set_defaults(func=cmd_fault)

    s = sub.add_parser("selftest", help="check the hardware and setup; PASS/FAIL table")
    s.set_defaults(func=cmd_selftest)

    s = sub.add_parser("debug", help="fault injection (simulation only)")
    dsub = s.add_subparsers(dest="debug_command", required=True)
    h = dsub.add_parser("hang", parents=[common], help="make a component stop responding")
    h.add_argument("value", metavar="COMPONENT")
    h.add_argument("--runtime-dir", type=folder_arg)
    h.set_defaults(func=cmd_send, request="hang")
    return p


def _stdout_failed(exc: OSError) -> bool:
    """Whether ``exc`` is a write to standard output that failed (a full disk behind
    ``> file``, /dev/full, an I/O error): no file name, and the errors a write gives."""
    return exc.filename is None and exc.errno in (errno.ENOSPC, errno.EIO, errno.EBADF,
                                                  errno.EFBIG, errno.EDQUOT)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush finds nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if sys.stdout is None:  # started with its standard output closed (`calmtunes sessions >&-`)
        sys.stdout = open(os.devnull, "w")  # for the life of the process: output goes nowhere
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
        return code
    except BrokenPipeError:
        # `calmtunes status | head -1`: the reader has what it wanted.
        _quiet_stdout()
        return 0
    except ConfigError as exc:
        print(f"calmtunes: configuration error in {exc}", file=sys.stderr)
        return EX_CONFIG
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if not _stdout_failed(exc):
            raise
        print(f"calmtunes: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        _quiet_stdout()
        return 1

