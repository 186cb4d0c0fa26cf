"""Shared test helpers (real servers, small fixtures), importable as ``helpers.<module>``."""
