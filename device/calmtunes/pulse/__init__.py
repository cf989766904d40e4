"""Pulse: the MAX30102 driver, and the analysis that turns PPG into heart rate, HRV, breathing."""
