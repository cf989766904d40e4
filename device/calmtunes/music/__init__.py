"""Music: what to play (composers, the conductor) and how it sounds (instruments, mixer)."""
