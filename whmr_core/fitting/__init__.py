"""Keypoint-guided body fitting (pure torch): the network's bodies made to agree with 2D keypoints.

``BodyFitter(body_model)(rotmats, betas, translation, keypoints, confidences, K) -> FitResult`` fits a
frame's persons at once; ``FittedOutputs(body_model)(person_outputs, result.person(i))`` re-poses one
person's network outputs with its fit for the Pipeline. docs/fitting.md has the energy, weights and timings.
"""

from whmr_core.fitting.apply import FittedOutputs
from whmr_core.fitting.body import KeypointBody
from whmr_core.fitting.fit import BodyFitter, FitConfig, FitResult, PersonFit, mirror_bodies
from whmr_core.fitting.priors import PosePrior, joint_limit_energy

__all__ = [
    "BodyFitter",
    "FitConfig",
    "FitResult",
    "FittedOutputs",
    "KeypointBody",
    "PersonFit",
    "PosePrior",
    "joint_limit_energy",
    "mirror_bodies",
]
