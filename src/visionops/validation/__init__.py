"""Manifest of every image + a Great Expectations 1.x suite over it, with severities."""
