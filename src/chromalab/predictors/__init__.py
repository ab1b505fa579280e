"""Predictors: everything that maps L to ab, from "leave it gray" to the U-Net."""

from .base import Predictor

__all__ = ["Predictor"]
