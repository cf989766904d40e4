"""The generator manifests this release of calmtunes trusts, by SHA-256.

The manifest (``calmtunes-generator.json`` beside the model) pins the model file's SHA-256; this
module pins the manifest. It lives in the installed package (``/opt/calmtunes/venv``, root-owned),
outside the model's folder (``/usr/share/calmtunes``), so a model and a manifest rewritten to
match each other are still refused (see ``load_manifest`` in ``generator.py``). Only
``music.model_trust: any`` loads an unpinned manifest, for developing a model.

Written by ``python -m models.generator.pin`` from ``models/calmtunes-generator.json``; a test
fails when the two disagree (a retrained model that was not pinned).
"""

from __future__ import annotations

#: SHA-256 of each trusted manifest file (its exact bytes) → what it is.
PINNED_MANIFESTS: dict[str, str] = {
    "a4cbf009853bf10d314ba8372eb76bb547f187e19eba014b46a5e8f344d89bf3":
        "calmtunes-generator.json as shipped in models/",
}
