"""On the device only: the driver against a real MAX30102 on /dev/i2c-1 (skipped elsewhere)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(not os.path.exists("/dev/i2c-1"), reason="no /dev/i2c-1 (not on the Pi)"),
]


@pytest.fixture
def driver():
    smbus2 = pytest.importorskip("smbus2")
    from calmtunes.pulse.max30102 import MAX30102, SensorError

    bus = smbus2.SMBus(1)
    d = MAX30102(bus)
    try:
        d.start()
    except SensorError as exc:
        bus.close()
        pytest.skip(f"no MAX30102 answers at 0x57: {exc}")
    yield d
    d.close()
    bus.close()


def test_real_chip_delivers_samples_at_the_configured_rate(driver):
    blocks = []
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        driver.wait(0.5)
        blocks.append(driver.read())
    t = np.concatenate([b.t for b in blocks])
    assert 250 <= len(t) <= 350 and np.all(np.diff(t) > 0)
    assert sum(b.lost for b in blocks) == 0
    assert 0.0 < driver.temperature() < 70.0
