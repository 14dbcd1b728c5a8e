"""Activation patterns of ReLU networks: exact enumeration, counts, sampling, deeper layers."""

from convexnn.arrangements.patterns import Patterns, data_fingerprint, design_matrix

__all__ = ["Patterns", "data_fingerprint", "design_matrix"]
