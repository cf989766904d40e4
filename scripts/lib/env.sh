# Shared by scripts/demo and scripts/test: a Python 3.11+ virtual environment in .venv with
# calmtunes installed (editable) and the system libraries it needs. Source it with EXTRAS set.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${CALMTUNES_VENV:-$ROOT/.venv}
EXTRAS=${EXTRAS:-}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Whether the dynamic linker finds a shared library. ldconfig lives in /sbin, which is not on an
# ordinary user's PATH: looked up there too, or a library that is installed would look missing
# and every run would call apt-get (and the network). (grep reads the whole list: with -q it
# would stop early, and under pipefail ldconfig's SIGPIPE would make the library look missing.)
have_lib() {
    local ldc
    for ldc in "$(command -v ldconfig 2>/dev/null || true)" /sbin/ldconfig /usr/sbin/ldconfig; do
        if [ -n "$ldc" ] && [ -x "$ldc" ]; then
            "$ldc" -p 2>/dev/null | grep -c "$1" >/dev/null
            return
        fi
    done
    compgen -G "/usr/lib/*/$1" >/dev/null || compgen -G "/usr/lib/$1" >/dev/null
}

need_apt=()
# PortAudio (sounddevice), ALSA's tools (aplay, the file PCM in the tests), sox for checks.
have_lib libportaudio.so.2 || need_apt+=(libportaudio2)
command -v aplay >/dev/null || need_apt+=(alsa-utils)
# strace lets the privacy tests watch every write a simulated session makes.
command -v strace >/dev/null || need_apt+=(strace)
# ssh-keygen signs and verifies the release bundles in the release tests.
case ",$EXTRAS," in *,dev,*) command -v ssh-keygen >/dev/null || need_apt+=(openssh-client) ;; esac
# the clinician's report is checked in a real browser engine (tests/care/test_report.py)
case ",$EXTRAS," in *,dev,*) command -v chromium >/dev/null || need_apt+=(chromium) ;; esac
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
        echo "missing system packages: ${need_apt[*]}; install them as root (apt-get install ${need_apt[*]})" >&2
        exit 1
    fi
    say "installing ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for cand in python3.11 python3.12 python3; do
        if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            PY=$cand; break
        fi
    done
fi
[ -n "$PY" ] || { echo "calmtunes needs Python 3.11 or newer" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq python3-venv >/dev/null; "$PY" -m venv "$VENV"
        else echo "python3-venv is missing: sudo apt install python3-venv" >&2; exit 1; fi
    fi
fi

# The runtime dependencies come from the hash-locked list the device installs (scripts/lock
# writes it; docs/SOUP.md says what each is), so tests run against exactly those releases.
LOCK="$ROOT/requirements/runtime-$(uname -m).txt"
[ -f "$LOCK" ] || { echo "no dependency lock for $(uname -m) ($LOCK): calmtunes is locked for aarch64 and x86_64" >&2; exit 1; }

# pip, quiet but for real problems (not the notes about local wheel folders this machine lacks);
# its own exit status.
pip_quiet() {
    local out rc=0
    out=$("$VENV/bin/python" -m pip "$@" 2>&1) || rc=$?
    printf '%s\n' "$out" | grep -v -e '^WARNING: Location' -e '^$' >&2 || true
    return "$rc"
}

# Reinstall only when the project's metadata or the lock change, or an extra is wanted that is
# not installed: a venv set up with more extras serves (./scripts/demo after ./scripts/test
# keeps the dev tools instead of reinstalling without them, and the other way round).
stamp="$VENV/.calmtunes-installed"
digest="$(cat "$ROOT/pyproject.toml" "$LOCK" | sha256sum | cut -c1-16)"
want="$digest [$EXTRAS]"
installed_serves() {
    [ -f "$stamp" ] || return 1
    local line have extra
    line=$(head -n 1 "$stamp")
    [ "${line%% *}" = "$digest" ] || return 1
    have=${line#* [}; have=",${have%]},"
    for extra in ${EXTRAS//,/ }; do
        case "$have" in *",$extra,"*) ;; *) return 1 ;; esac
    done
}
if ! installed_serves; then
    say "installing calmtunes${EXTRAS:+ with [$EXTRAS]} into $VENV (first time takes a few minutes)"
    pip_opts=(-q --disable-pip-version-check)
    # Use local wheel caches where the machine has them (e.g. the CPU build of torch).
    [ -d /opt/wheels ] && pip_opts+=(--find-links /opt/wheels)
    pip_quiet install "${pip_opts[@]}" --upgrade pip wheel || true
    pip_quiet install "${pip_opts[@]}" --require-hashes --only-binary :all: -r "$LOCK" \
        || { echo "installing the locked runtime dependencies ($LOCK) failed" >&2; exit 1; }
    spec="$ROOT"; [ -n "$EXTRAS" ] && spec="$ROOT[$EXTRAS]"
    pip_quiet install "${pip_opts[@]}" -e "$spec" || { echo "installing calmtunes failed" >&2; exit 1; }
    "$VENV/bin/python" -c 'import calmtunes' || { echo "installing calmtunes failed" >&2; exit 1; }
    # The extras must not have moved a locked runtime package: the tests test what the device runs.
    "$VENV/bin/python" - "$LOCK" <<'EOF' || exit 1
import re
import sys
from importlib.metadata import version

pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", open(sys.argv[1]).read(), re.M)
# The dev extra caps setuptools for heartpy (pkg_resources); nothing of calmtunes imports it.
moved = [f"{n} {version(n)} (locked {v})" for n, v in pins if n != "setuptools" and version(n) != v]
if moved:
    sys.exit("the dev/train extras replaced locked runtime packages: " + ", ".join(moved))
EOF
    echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
