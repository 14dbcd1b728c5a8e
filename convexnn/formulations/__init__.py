"""Exact convex programs for ReLU networks, emitted as ``cvxpy.Problem`` objects."""

from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.formulations.losses import HingeLoss, LogisticLoss, Loss, SquaredLoss, get_loss

__all__ = ["Formulation", "ConvexSolution", "Loss", "SquaredLoss", "LogisticLoss", "HingeLoss", "get_loss"]
