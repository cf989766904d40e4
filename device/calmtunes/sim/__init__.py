"""Emulators for everything the device senses: first-class backends for tests and the demo.

Nothing here is imported by the real drivers; the factories choose a backend from config.
"""
