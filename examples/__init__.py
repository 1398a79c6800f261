"""Runnable example services built on brownout."""
