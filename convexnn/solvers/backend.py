"""The array backend of the first-order solvers: :mod:`convexnn.backend` (numpy / torch)."""

from convexnn.backend import Backend, get_backend, torch_available

__all__ = ["Backend", "get_backend", "torch_available"]
