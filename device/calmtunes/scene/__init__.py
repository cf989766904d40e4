"""Scene context from the camera: a handful of numbers, never an image."""
