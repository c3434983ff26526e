"""Builders of results folders with known contents for the reports tests."""
