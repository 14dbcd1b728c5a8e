"""Non-convex networks the convex programs are equivalent to (one module per family)."""

from convexnn.networks.two_layer import GatedReLU, TwoLayerReLU
from convexnn.networks.deep import DeepGatedReLU, DeepReLU, ThreeLayerReLU, train_deep, train_three_layer

__all__ = ["TwoLayerReLU", "GatedReLU"]
__all__ += ["ThreeLayerReLU", "DeepReLU", "DeepGatedReLU", "train_three_layer", "train_deep"]
