"""The generator's training side. It imports calmtunes first, so the package's privacy settings
(onnxruntime telemetry off; see device/calmtunes/__init__.py) are in force before training,
export or evaluation loads torch, onnx or onnxruntime."""

import calmtunes  # noqa: F401
