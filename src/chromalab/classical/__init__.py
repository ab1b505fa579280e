"""Train the classical models (``chromalab train linear|svr``) into run folders.

Configs: one validated model per model (:class:`LinearConfig`, :class:`SVRConfig`, in
:mod:`.config`), loaded from
``chromalab/configs/<model>_<preset>.yaml`` (presets ``seed`` and ``quick``; a path to a
YAML file of the same shape works too), then ``--set key=value`` overrides, and saved
resolved as the run's ``config.yaml``.

A run folder::

    run.json                 kind, preset, data, counts, train_seconds, selection, val/test summary
    config.yaml              the resolved config
    model.npz, model.json    learned arrays (no pickle) and their description
    val.json, test.json      metrics (``evaluate_split``) on the val and test splits
    ceiling_test.json        the model's own PCA ceiling on test (``eval_ceiling``)
    pca_reconstructions.png  originals next to reconstructions from K = 50, 150, 300, 600
    pca_variance.png         cumulative explained variance (ab, and L when PCA features)
    loss.png                 (linear) GD training loss and validation MSE per epoch
    selection.png            (svr) validation MSE over the C / epsilon / gamma grid

Linear: ab-PCA targets (K components of all train ab, shared with the ``pca-ceiling``
reference when the settings match), standardized L features, ridge strength ``alpha`` picked
on val from ``alphas`` with the exact ridge path (one eigen-decomposition), then the model is
fitted by mini-batch gradient descent at that alpha with early stopping on val; the closed
form at the same alpha is computed too and its training MSE recorded next to GD's.

SVR: 28x28 (L resized from 64x64 with the same bicubic the predictor uses, ab from the 28x28
cache), ab-PCA (K=300) targets standardized per component, PCA-of-L inputs, one RBF kernel
shared by all outputs; C, epsilon and gamma (multiples of sklearn's ``'scale'``) picked on
val by the MSE of the predicted ab-PCA coefficients (= ab MSE at 28x28 up to a constant).
"""

from .config import CONFIGS, FAMILIES, LinearConfig, SVRConfig, preset_path, resolve_config
from .linear import ridge_path
from .run import train_classical

__all__ = ["CONFIGS", "FAMILIES", "LinearConfig", "SVRConfig", "preset_path", "resolve_config", "ridge_path",
           "train_classical"]
