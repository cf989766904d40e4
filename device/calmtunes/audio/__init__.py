"""Audio output: a ring buffer filled ahead, and the sinks that drain it."""
