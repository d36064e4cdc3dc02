"""Losses (per example, no reduction), in the conventions of Optax."""
