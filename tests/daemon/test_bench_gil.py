"""scripts/bench_gil runs (it is the check a Pi gets) and finds a thread that holds the GIL."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_gil"


def load_script():
    loader = importlib.machinery.SourceFileLoader("bench_gil", str(SCRIPT))
    spec = importlib.util.spec_from_loader("bench_gil", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_ticker_sees_a_thread_that_holds_the_gil_and_names_it():
    bench = load_script()
    ticker = bench.Ticker(keep_stacks_over=0.03)
    big = np.arange(3_000_000, dtype=object)  # summing Python objects keeps the GIL throughout

    def hold():
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            big.sum()

    ticker.start()
    time.sleep(0.05)
    holder = threading.Thread(target=hold, name="holder")
    holder.start()
    holder.join()
    ticker.stop()
    assert max(late for _, late in ticker.lates) > 0.03
    assert any("holder" in line for _, _, busy in ticker.stacks for line in busy)


@pytest.mark.slow
def test_the_script_prints_its_table(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"),
               XDG_RUNTIME_DIR=str(tmp_path / "run"))
    done = subprocess.run([sys.executable, str(SCRIPT), "--seconds", "3", "--start", "1",
                           "--top", "1"], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "longest wait in the start" in done.stdout
    assert "underruns the emulated card counted" in done.stdout
