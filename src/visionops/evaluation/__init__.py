"""Test-set metrics (accuracy, macro P/R/F1, per class, calibration) and their plots."""
