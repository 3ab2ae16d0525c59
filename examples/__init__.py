"""Runnable examples and demo targets for corral."""
