"""calmtunes: offline, biofeedback-driven calming music for a bedside Raspberry Pi.

Importing the package turns off what its dependencies would otherwise do behind the listener's
back. This is the one place for it: every ``calmtunes.*`` import runs this module first, so it
happens before onnxruntime or OpenCV is loaded by any entry point (the daemon, ``render``,
``selftest``, the benchmarks, training and export, the tests). The values are forced, not
defaulted, so an inherited environment cannot switch them back on. What each dependency does on
the network and on disk, and how it was measured, is in docs/SOUP.md.
"""

import os

PRIVACY_ENVIRONMENT = {
    # onnxruntime (1.29 and later) ships Microsoft's 1DS telemetry: on import it writes an event
    # database and a device id under ~/.cache/Microsoft/DeveloperTools/.onnxruntime/, and about
    # 9 s later looks up mobile.events.data.microsoft.com (UDP to the DNS resolver) to upload
    # them. onnxruntime reads this variable when it is imported: setting it later is too late.
    "ORT_DISABLE_TELEMETRY": "1",
    # OpenCV would load an OpenCL runtime if the machine has one and cache compiled kernels in
    # ~/.cache/opencv/; calmtunes uses no OpenCL, so none is loaded and nothing is cached.
    "OPENCV_OPENCL_RUNTIME": "disabled",
}

os.environ.update(PRIVACY_ENVIRONMENT)

__version__ = "0.1.0"
