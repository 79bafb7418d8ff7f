"""Insight: coverage against targets and real questions, authoring tasks, and production monitoring."""
