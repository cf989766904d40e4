"""Pin the shipped generator manifest into the calmtunes package.

``python -m models.generator.pin`` writes the SHA-256 of ``models/calmtunes-generator.json``
into ``device/calmtunes/music/model_pin.py``, the list of manifests the daemon trusts (see that
module). Run it after retraining (``python -m models.generator.train``) and commit both.
``--check`` only compares, exiting 1 when the pin is stale.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "models" / "calmtunes-generator.json"
PIN_MODULE = REPO / "device" / "calmtunes" / "music" / "model_pin.py"
ENTRY = re.compile(r"(PINNED_MANIFESTS: dict\[str, str\] = \{\n)(.*?)(^\})", re.S | re.M)


def manifest_sha256(path: Path = MANIFEST) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pinned_text(text: str, digest: str) -> str:
    """``model_pin.py``'s text with ``digest`` as the one trusted manifest."""
    entry = f'    "{digest}":\n        "calmtunes-generator.json as shipped in models/",\n'
    new, n = ENTRY.subn(lambda m: m.group(1) + entry + m.group(3), text)
    if n != 1:
        raise SystemExit(f"pin: cannot find PINNED_MANIFESTS in {PIN_MODULE}")
    return new


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.generator.pin", description=__doc__)
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    args = p.parse_args(argv)
    digest = manifest_sha256()
    text = PIN_MODULE.read_text()
    new = pinned_text(text, digest)
    if new == text:
        print(f"pin: {PIN_MODULE.name} already pins {MANIFEST.name} ({digest[:12]}…)")
        return 0
    if args.check:
        print(f"pin: {PIN_MODULE.name} does not pin {MANIFEST.name} ({digest[:12]}…); run "
              f"`python -m models.generator.pin` and commit it", file=sys.stderr)
        return 1
    PIN_MODULE.write_text(new)
    print(f"pin: {PIN_MODULE.name} now pins {MANIFEST.name} ({digest[:12]}…)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
