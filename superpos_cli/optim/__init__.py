"""The superpositional optimizer: perturbation registry, functional kernel, class."""

from superpos_cli.optim.optimizer import SCOPES, SuperpositionalAdam
from superpos_cli.optim.perturbations import PERTURBATIONS, Perturbation, get_perturbation

__all__ = ["PERTURBATIONS", "SCOPES", "Perturbation", "SuperpositionalAdam", "get_perturbation"]
