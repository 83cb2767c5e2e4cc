"""Filters over QA, pages and trajectories (issue 4)."""
