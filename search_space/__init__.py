"""Pure-Python definition of FFN designs, search spaces, costs, libraries and exports.

Imports neither torch nor the service: a design can be built, validated, costed, searched
over and exported on any machine.
"""

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from search_space.design import Sparsity
from search_space.errors import DesignError
from search_space.errors import SearchSpaceError
from search_space.workload import Workload

__all__ = [
    "DesignError",
    "FFNDesign",
    "LayerFFN",
    "ModelDims",
    "SearchSpaceError",
    "Sparsity",
    "Workload",
]
