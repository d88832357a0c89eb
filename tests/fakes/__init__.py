"""Test doubles of external services (tests import them; the gliofuse package never does)."""
