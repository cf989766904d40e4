# Shared by scripts/demo and scripts/test: a Python 3.11+ virtual environment in .venv with
# calmtunes installed (editable) and the system libraries it needs. Source it with EXTRAS set.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${CALMTUNES_VENV:-$ROOT/.venv}
EXTRAS=${EXTRAS:-}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

need_apt=()
# PortAudio (sounddevice), ALSA's tools (aplay, the file PCM in the tests), sox for checks.
ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || need_apt+=(libportaudio2)
command -v aplay >/dev/null || need_apt+=(alsa-utils)
# strace lets the privacy tests watch every write a simulated session makes.
command -v strace >/dev/null || need_apt+=(strace)
# ssh-keygen signs and verifies the release bundles in the release tests.
case ",$EXTRAS," in *,dev,*) command -v ssh-keygen >/dev/null || need_apt+=(openssh-client) ;; esac
ldconfig -p 2>/dev/null | grep -q 'libGL.so.1' || true  # opencv-python-headless needs no libGL
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

# Reinstall only when the project's metadata or the wanted extras change.
stamp="$VENV/.calmtunes-installed"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16) [$EXTRAS]"
if [ ! -f "$stamp" ] || ! grep -qxF -- "$want" "$stamp"; then
    say "installing calmtunes${EXTRAS:+ with [$EXTRAS]} into $VENV (first time takes a few minutes)"
    pip_opts=(-q --disable-pip-version-check)
    # Use local wheel caches where the machine has them (e.g. the CPU build of torch).
    [ -d /opt/wheels ] && pip_opts+=(--find-links /opt/wheels)
    "$VENV/bin/python" -m pip install "${pip_opts[@]}" --upgrade pip wheel 2>&1 | grep -v '^WARNING: Location' || true
    spec="$ROOT"; [ -n "$EXTRAS" ] && spec="$ROOT[$EXTRAS]"
    "$VENV/bin/python" -m pip install "${pip_opts[@]}" -e "$spec" 2>&1 | grep -v '^WARNING: Location' || true
    "$VENV/bin/python" -c 'import calmtunes' || { echo "installing calmtunes failed" >&2; exit 1; }
    echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
