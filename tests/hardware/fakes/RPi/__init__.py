"""Fake RPi package: only GPIO."""
