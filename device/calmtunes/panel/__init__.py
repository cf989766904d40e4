"""The control panel: mood-preset and volume buttons, status LEDs (gpiozero)."""
