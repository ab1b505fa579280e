"""The configs of the classical models: :class:`LinearConfig` and :class:`SVRConfig` (pydantic).

Resolution (later wins): the model's defaults < the preset (``chromalab/configs/<model>_<preset>.yaml``,
presets ``seed`` and ``quick``, or the path of a YAML file of the same shape, such as a run's saved
``config.yaml``, which re-runs that run) < ``--set key=value``. Saved resolved as the run's ``config.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..config import (
    ConfigModel,
    Limit,
    PosInt,
    build,
    find_preset,
    is_yaml_path,
    merge,
    read_yaml,
    write_yaml,
)
from ..errors import ChromalabError

FAMILIES = ("linear", "svr")

Grid = Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)]
"""A hyper-parameter grid: a non-empty list of numbers >= 0 (a single number is a list of one)."""


class ClassicalConfig(ConfigModel):
    """The checks both classical configs share (each lists its own fields, in the order of its config.yaml)."""

    @field_validator("features", check_fields=False)
    @classmethod
    def _known_features(cls, v: str) -> str:
        from ..predictors.features import LFeatures

        try:
            LFeatures(v).blocks  # noqa: B018  (raises a clear error for an unknown kind)
        except ChromalabError as e:
            raise ValueError(str(e).removeprefix("features: ")) from None
        return v

    @field_validator("alphas", "C", "epsilon", "gamma", mode="before", check_fields=False)
    @classmethod
    def _one_is_a_list(cls, v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v if isinstance(v, list) else [v]


def _check_grid(grid: int, features: str, size: int, name: str) -> None:
    if size % grid and "binned" in features:
        raise ValueError(f"grid must be a divisor of {name} {size}, got {grid}")


class LinearConfig(ClassicalConfig):
    """``chromalab train linear``: the study's 64x64, K=600 linear regression by GD."""

    model: Literal["linear"] = "linear"
    preset: str = "seed"
    size: PosInt = 64
    train_limit: Limit = None  # None: every train image
    val_limit: Limit = 1000
    test_limit: Limit = None  # None: the whole test split
    ab_components: PosInt = 600
    features: str = "binned"  # pca | pixels | binned, or joined: pca+binned
    l_components: PosInt = 600
    grid: PosInt = 16  # binned features: cells per side (size must be a multiple)
    bins: Annotated[int, Field(ge=2)] = 8  # binned features: L levels
    feature_scale: Literal["feature", "global"] = "feature"  # z-score each feature | one scale per block
    pca_solver: str = "auto"
    alphas: Grid = Field(default_factory=lambda: [0.1, 1.0, 3.0, 10.0, 30.0, 100.0])
    batch_size: PosInt | None = 4096  # None: full batch
    max_epochs: PosInt = 20
    momentum: float = 0.9
    lr: float | None = None  # None: 1 / (largest Hessian eigenvalue)
    patience: int = 8
    seed: int = 0
    eval_ceiling: bool = True
    figure_images: Annotated[int, Field(ge=0)] = 6

    @model_validator(mode="after")
    def _consistent(self) -> LinearConfig:
        _check_grid(self.grid, self.features, self.size, "size")
        return self


class SVRConfig(ClassicalConfig):
    """``chromalab train svr``: the study's 28x28 RBF SVR on K=300 ab-PCA targets."""

    model: Literal["svr"] = "svr"
    preset: str = "seed"
    model_size: PosInt = 28
    train_limit: Limit = 2000
    val_limit: Limit = 1000
    test_limit: Limit = None
    ab_components: PosInt = 300
    features: str = "binned"
    l_components: PosInt = 300
    grid: PosInt = 7
    bins: Annotated[int, Field(ge=2)] = 8
    feature_scale: Literal["feature", "global"] = "global"
    target_scale: Literal["output", "global", "none"] = "output"  # z-score per component | one scale | none
    C: Grid = Field(default_factory=lambda: [0.1, 0.3, 1.0])
    epsilon: Grid = Field(default_factory=lambda: [0.5, 1.0])
    gamma: Grid = Field(default_factory=lambda: [0.5, 1.0, 2.0])  # multiples of 1 / (D * var(X))
    tol: float = 1e-3
    n_jobs: int = -1
    seed: int = 0
    eval_ceiling: bool = True
    figure_images: Annotated[int, Field(ge=0)] = 6

    @model_validator(mode="after")
    def _consistent(self) -> SVRConfig:
        _check_grid(self.grid, self.features, self.model_size, "model_size")
        if any(x <= 0 for x in self.C + self.gamma):
            raise ValueError(f"C and gamma must be positive, got C {self.C} and gamma {self.gamma}")
        return self


CONFIGS: dict[str, type[LinearConfig] | type[SVRConfig]] = {"linear": LinearConfig, "svr": SVRConfig}


def preset_path(model: str, preset: str) -> Path:
    return find_preset(preset, model, what=f"{model} preset")


def resolve_config(model: str, preset: str = "seed", overrides: dict | None = None) -> LinearConfig | SVRConfig:
    """Defaults < the preset's YAML < ``--set`` overrides; validated."""
    if model not in CONFIGS:
        raise ChromalabError(f"unknown classical model {model!r} (choose {', '.join(FAMILIES)})")
    cls = CONFIGS[model]
    path = preset_path(model, preset)
    y = read_yaml(path)
    d = cls().model_dump()
    d["preset"] = str(path) if is_yaml_path(preset) else preset
    if y.get("model", model) != model:  # a saved config.yaml names its model
        raise ChromalabError(f"{path}: this config is for {y['model']!r}, not {model!r}")
    known = tuple(k for k in cls.keys() if k != "model")
    origin: dict[str, str] = {}
    merge(d, {k: v for k, v in y.items() if k != "model"}, str(path), origin, known, f"{model} config key")
    merge(d, overrides or {}, "--set", origin, known, f"{model} config key")
    return build(cls, d, str(path), origin)


def write_config(path: Path, cfg: LinearConfig | SVRConfig) -> None:
    write_yaml(path, cfg, f"resolved config of this run (chromalab train {cfg.model} --preset {cfg.preset})")
