"""Reusable station widgets, one per module."""
