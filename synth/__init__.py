"""Synthesis stages (issue 3)."""
