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
    SolverError,
    TooLargeError,
)
from convexnn.data import load_dataset
from convexnn.arrangements import Patterns
from convexnn.formulations import ConvexSolution, Formulation, get_loss

# --- arrangements (issue 2) ---
# --- two-layer formulations, networks, mappings (issue 3) ---
# --- duality and certificates (issue 4) ---
# --- first-order solvers (issue 5) ---
# --- three-layer and deep programs (issue 6) ---

__version__ = "0.1.0"
