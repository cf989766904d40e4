"""Personal care: the arms a session may play, their reward, the bandit that learns a listener's
best one, and the per-listener record it keeps (see ``docs/care.md``)."""
