"""Exact convex programs for ReLU networks, emitted as ``cvxpy.Problem`` objects."""

from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.formulations.losses import HingeLoss, LogisticLoss, Loss, SquaredLoss, get_loss, register_loss
from convexnn.formulations.huber import HuberLoss
from convexnn.formulations.two_layer import CGReLU, CReLU, MinNormInterpolation, c_grelu, c_relu, min_norm_interpolation

__all__ = ["Formulation", "ConvexSolution", "Loss", "SquaredLoss", "LogisticLoss", "HingeLoss", "HuberLoss",
           "get_loss", "register_loss",
           "CReLU", "CGReLU", "MinNormInterpolation", "c_relu", "c_grelu", "min_norm_interpolation"]

# --- three-layer and deep programs ---
from convexnn.formulations.three_layer import (  # noqa: E402
    ThreeLayerCertificate,
    ThreeLayerFormulation,
    three_layer,
    three_layer_gap,
)
from convexnn.formulations.deep import DeepFormulation, DeepGatedFormulation, deep_grelu, deep_relu  # noqa: E402

__all__ += ["ThreeLayerFormulation", "ThreeLayerCertificate", "three_layer", "three_layer_gap",
            "DeepFormulation", "DeepGatedFormulation", "deep_relu", "deep_grelu"]
