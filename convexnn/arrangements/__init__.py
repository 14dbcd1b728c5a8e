"""Activation patterns of ReLU networks: exact enumeration, counts, sampling, deeper layers."""

from convexnn.arrangements.patterns import Patterns, data_fingerprint, design_matrix

__all__ = ["Patterns", "data_fingerprint", "design_matrix"]

# --- arrangements ---
from convexnn.arrangements.enumerate import (  # noqa: E402
    count_patterns,
    cover_bound,
    enumerate_patterns,
    enumerate_patterns_lp,
)
from convexnn.arrangements.sample import sample_patterns  # noqa: E402

__all__ += ["count_patterns", "cover_bound", "enumerate_patterns", "enumerate_patterns_lp",
            "sample_patterns"]

# --- second-layer and deep patterns ---
from convexnn.arrangements.layers import (  # noqa: E402
    LayerPatterns,
    NeuronCombos,
    all_masks,
    deep_layer_patterns,
    first_layer_combos,
    network_patterns,
    sample_combos,
    second_layer_patterns,
)

__all__ += ["LayerPatterns", "NeuronCombos", "all_masks", "deep_layer_patterns", "first_layer_combos",
            "network_patterns", "sample_combos", "second_layer_patterns"]

# --- facets of chambers ---
from convexnn.arrangements.facets import ChamberFacets, chamber_facets  # noqa: E402

__all__ += ["ChamberFacets", "chamber_facets"]
