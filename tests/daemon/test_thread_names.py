"""The daemon's threads carry their names in the kernel, for top -H, ps -L and scripts/bench."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from calmtunes.component import name_os_threads

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc only")


def comm(thread: threading.Thread) -> str:
    return Path(f"/proc/self/task/{thread.native_id}/comm").read_text().strip()


def test_threads_are_named_once_and_library_threads_by_their_target():
    stop = threading.Event()
    ours = threading.Thread(target=stop.wait, name="pulse", daemon=True)
    library = threading.Thread(target=stop.wait, daemon=True)  # "Thread-N (wait)"
    ours.start()
    library.start()
    try:
        assert comm(ours) != "pulse"
        name_os_threads()
        assert comm(ours) == "pulse" and comm(library) == "wait"
        Path(f"/proc/self/task/{ours.native_id}/comm").write_text("renamed")
        name_os_threads()  # a thread already named is not written again
        assert comm(ours) == "renamed"
    finally:
        stop.set()
        ours.join()
        library.join()
