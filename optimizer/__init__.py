"""Sales territory and capacity optimisation: Pyomo models solved by HiGHS."""

from optimizer.alignment import AlignmentResult, align
from optimizer.domain import AlignmentData, Scenario
from optimizer.errors import InfeasibleScenarioError, InputError, OptimizerError, SolverError

__all__ = ["AlignmentData", "AlignmentResult", "InfeasibleScenarioError", "InputError",
           "OptimizerError", "Scenario", "SolverError", "align"]
