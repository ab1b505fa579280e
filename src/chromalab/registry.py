"""Model name -> builder, as an explicit dict (no string imports).

A new model plugs in here and shows up in `evaluate`, `compare`, `colorize`, `models`
and the web page. Run folders and weights files load through :data:`RUN_LOADERS`,
keyed by the ``kind`` written in the run's ``run.json``. pix2pix and vivid runs are of kind
``net`` (a pix2pix run exports its generator, a plain U-Net; a vivid file is recognised by
its ``arch`` metadata); their bundled entries are listed once their weights ship.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .paths import bundled_weights
from .predictors.base import Predictor


@dataclass
class BuildContext:
    """What a builder may need: the data source (for models fitted on train statistics)."""

    data: str | None = None
    progress: bool = True

    def prepared(self):
        from .data.cache import load_prepared

        return load_prepared(self.data, progress=self.progress)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    summary: str
    builder: Callable[[BuildContext], Predictor]
    needs_data: bool = False
    group: str = "reference"  # reference | bundled
    weights: str | None = None  # bundled: the file's stem in weights/ (None: the name itself)

    @property
    def weights_stem(self) -> str:
        return self.weights or self.name


def _gray(ctx: BuildContext) -> Predictor:
    from .predictors.baselines import GrayPredictor

    return GrayPredictor()


def _mean_ab(ctx: BuildContext) -> Predictor:
    from .predictors.baselines import MeanAbPredictor

    return MeanAbPredictor(ctx.prepared().mean_ab())


def _pca_ceiling(ctx: BuildContext) -> Predictor:
    try:
        from .predictors.pca import build_pca_ceiling
    except ImportError as e:  # pragma: no cover - during development
        raise ModelError(f"pca-ceiling is not available in this build ({e})") from None
    return build_pca_ceiling(ctx)


def _bundled(name: str, stem: str | None = None) -> Callable[[BuildContext], Predictor]:
    def build(ctx: BuildContext) -> Predictor:
        from .predictors.nets import load_bundled

        return load_bundled(stem or name, as_name=name)

    return build


REGISTRY: dict[str, ModelEntry] = {
    "gray": ModelEntry("gray", "leave the image gray (a = b = 0)", _gray),
    "mean-ab": ModelEntry("mean-ab", "every pixel gets the mean train (a, b)", _mean_ab, needs_data=True),
    "pca-ceiling": ModelEntry(
        "pca-ceiling", "true ab projected on the first K=600 PCA components: the best a PCA-space model can do",
        _pca_ceiling, needs_data=True,
    ),
    "default": ModelEntry(
        "default", "bundled ColorNet, the default colorizer: U-Net + scene classes (200) + colour classes and "
        "regression, vividness 0-1 (--vividness), takes colour hints", _bundled("default"), group="bundled"),
    "guided": ModelEntry(
        "guided", "the default ColorNet used with colour hints (--hint X,Y,COLOR); with none it is the default",
        _bundled("guided", "default"), group="bundled", weights="default"),
    "regression": ModelEntry(
        "regression", "the previous default: U-Net trained on the SSIM-hybrid regression loss (accurate on "
        "average, but sepia on real photos)", _bundled("regression"), group="bundled"),
    "vivid": ModelEntry(
        "vivid", "bundled vivid model: U-Net classifying ab bins, rebalanced, annealed mean (T = 0.2, chosen on val; --temperature changes it)",
        _bundled("vivid"), group="bundled",
    ),
    "pix2pix": ModelEntry("pix2pix", "bundled pix2pix cGAN generator (U-Net, GAN + 100·L1)", _bundled("pix2pix"),
                          group="bundled"),
}


def _load_linear(folder: Path) -> Predictor:
    from .predictors.linear_gd import load_run

    return load_run(folder)


def _load_svr(folder: Path) -> Predictor:
    from .predictors.svr import load_run

    return load_run(folder)


def _load_net(path: Path) -> Predictor:
    from .predictors.nets import load_net

    return load_net(path)


RUN_LOADERS: dict[str, Callable[[Path], Predictor]] = {
    "linear": _load_linear,
    "svr": _load_svr,
    "net": _load_net,
}


def available_bundled() -> list[str]:
    """Bundled models whose weights ship in this install."""
    return [n for n, e in REGISTRY.items() if e.group == "bundled" and bundled_weights(e.weights_stem).exists()]


def load_predictor(spec: str, data: str | None = None, progress: bool = True) -> Predictor:
    """A registry name, a run folder (with ``run.json``) or a ``.safetensors`` weights file."""
    if spec in REGISTRY:
        return REGISTRY[spec].builder(BuildContext(data=data, progress=progress))
    p = Path(spec).expanduser()
    if p.is_dir():
        meta = p / "run.json"
        if not meta.exists():
            raise ModelError(f"{p}: not a run folder (no run.json); finished runs have one")
        try:
            kind = json.loads(meta.read_text())["kind"]
        except (ValueError, KeyError) as e:
            raise ModelError(f"{meta}: unreadable run description ({e})") from None
        if kind not in RUN_LOADERS:
            raise ModelError(f"{meta}: unknown run kind {kind!r}")
        if kind == "net":
            return RUN_LOADERS[kind](p / "best.safetensors")
        return RUN_LOADERS[kind](p)
    if p.is_file():
        if p.suffix == ".safetensors":
            return _load_net(p)
        raise ModelError(f"{p}: not a model (expected a run folder or a .safetensors file)")
    names = ", ".join(REGISTRY)
    raise ModelError(f"unknown model {spec!r}: not a registry name ({names}), run folder or weights file")
