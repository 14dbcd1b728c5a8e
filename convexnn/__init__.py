"""convexnn: exact convex programs for ReLU networks.

Data flows one way: data -> patterns -> formulation -> solution -> network -> certificate.
Only the names below are public; everything else is an implementation detail.
"""

from convexnn.errors import (
    ConvergenceWarning,
    ConvexNNError,
    ConvexNNWarning,
    InaccurateSolutionWarning,
    InputError,
    NotFittedError,
    NotProvenWarning,
    SolverError,
    TooLargeError,
)
from convexnn.data import load_dataset
from convexnn.arrangements import Patterns
from convexnn.formulations import ConvexSolution, Formulation, get_loss

# --- arrangements ---
from convexnn.arrangements import (
    count_patterns,
    cover_bound,
    enumerate_patterns,
    enumerate_patterns_lp,
    sample_patterns,
)
# --- two-layer formulations, networks, mappings ---
from convexnn.formulations.two_layer import (
    CGReLU,
    CReLU,
    MinNormInterpolation,
    c_grelu,
    c_relu,
    min_norm_interpolation,
)
from convexnn.networks.two_layer import GatedReLU, TwoLayerReLU
from convexnn.mapping import ConeDecomposition, ConvexModel, cone_decomposition, from_network
# --- duality and certificates ---
from convexnn.duality import (
    KKT,
    Certificate,
    DualityGap,
    DualProblem,
    OptimalSet,
    certify,
    dual_problem,
    duality_gap,
    kkt,
    optimal_set,
    prune,
    prune_to,
)
# --- solvers ---
from convexnn.solvers import solve
# --- ecosystem: regularization paths, PyTorch conventions, scikit-learn, persistence ---
from convexnn.path import PathResult, lam_max, path
from convexnn.torch_interop import lam_from_torch, to_torch_weight_decay, torch_objective_scale
from convexnn.estimators import (
    ConvexGatedReLUClassifier,
    ConvexGatedReLURegressor,
    ConvexReLUClassifier,
    ConvexReLURegressor,
)
from convexnn.io import load, save
# --- three-layer and deep programs ---
from convexnn.arrangements.layers import (
    LayerPatterns,
    NeuronCombos,
    all_masks,
    deep_layer_patterns,
    first_layer_combos,
    network_patterns,
    sample_combos,
    second_layer_patterns,
)
from convexnn.formulations.three_layer import ThreeLayerCertificate, ThreeLayerFormulation, three_layer, three_layer_gap
from convexnn.formulations.deep import DeepFormulation, DeepGatedFormulation, deep_grelu, deep_relu
from convexnn.networks.deep import DeepGatedReLU, DeepReLU, ThreeLayerReLU, train_deep, train_three_layer

__all__ = [
    "ConvergenceWarning",
    "ConvexNNError",
    "ConvexNNWarning",
    "InaccurateSolutionWarning",
    "InputError",
    "NotFittedError",
    "NotProvenWarning",
    "SolverError",
    "TooLargeError",
    "load_dataset",
    "Patterns",
    "ConvexSolution",
    "Formulation",
    "get_loss",
    "count_patterns",
    "cover_bound",
    "enumerate_patterns",
    "enumerate_patterns_lp",
    "sample_patterns",
    "CGReLU",
    "CReLU",
    "MinNormInterpolation",
    "c_grelu",
    "c_relu",
    "min_norm_interpolation",
    "GatedReLU",
    "TwoLayerReLU",
    "ConeDecomposition",
    "ConvexModel",
    "cone_decomposition",
    "from_network",
    "KKT",
    "Certificate",
    "DualityGap",
    "DualProblem",
    "OptimalSet",
    "certify",
    "dual_problem",
    "duality_gap",
    "kkt",
    "optimal_set",
    "prune",
    "prune_to",
    "solve",
    "PathResult",
    "lam_max",
    "path",
    "lam_from_torch",
    "to_torch_weight_decay",
    "torch_objective_scale",
    "ConvexGatedReLUClassifier",
    "ConvexGatedReLURegressor",
    "ConvexReLUClassifier",
    "ConvexReLURegressor",
    "load",
    "save",
    "LayerPatterns",
    "NeuronCombos",
    "all_masks",
    "deep_layer_patterns",
    "first_layer_combos",
    "network_patterns",
    "sample_combos",
    "second_layer_patterns",
    "ThreeLayerCertificate",
    "ThreeLayerFormulation",
    "three_layer",
    "three_layer_gap",
    "DeepFormulation",
    "DeepGatedFormulation",
    "deep_grelu",
    "deep_relu",
    "DeepGatedReLU",
    "DeepReLU",
    "ThreeLayerReLU",
    "train_deep",
    "train_three_layer",
]

__version__ = "0.1.0"
