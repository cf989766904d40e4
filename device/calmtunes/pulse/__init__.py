"""Pulse: the MAX30102 driver, and the analysis that turns PPG into heart rate, HRV, breathing.

``analyze(signal, fs)`` analyses one window of PPG (see :mod:`calmtunes.pulse.analysis`);
:class:`calmtunes.pulse.analyser.PulseAnalyser` runs the same analysis on live sensor samples.
"""

from calmtunes.pulse.analysis import PulseAnalysis, analyze

__all__ = ["PulseAnalysis", "analyze"]
