"""The presets of ``chromalab compare`` (``chromalab/configs/compare.yaml``), validated.

Each preset names the training presets its rows use and the overrides on top of them; see the
comments in compare.yaml for what each key does and :mod:`chromalab.compare` for the order in
which a net row's overrides apply.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from .classical.config import LinearConfig, SVRConfig
from .config import CONFIG_DIR, ConfigModel, Limit, build, find_preset, merge, read_yaml
from .training.config import NetConfig

COMPARE_YAML = CONFIG_DIR / "compare.yaml"
CLASSICAL_KEYS = tuple(dict.fromkeys(k for c in (LinearConfig, SVRConfig) for k in c.keys() if k != "model"))
"""The keys ``classical_overrides`` may set (those of either classical model)."""


def _check_keys(d: dict[str, Any], known: tuple[str, ...], what: str) -> dict[str, Any]:
    unknown = [k for k in d if k not in known]
    if unknown:
        raise ValueError(f"unknown {what} config key {unknown[0]!r} (known: {', '.join(known)})")
    return d


class CompareSettings(ConfigModel):
    """One preset of compare.yaml."""

    classical_preset: str  # linear_<preset>.yaml and svr_<preset>.yaml
    net_preset: str  # net_<preset>.yaml
    net_overrides: dict[str, Any] = Field(default_factory=dict)  # --set for every net row
    config_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)  # --set for one net row, by name
    classical_overrides: dict[str, Any] = Field(default_factory=dict)  # --set for linear and svr
    test_limit: Limit = None  # the first N test images (None: all)

    @field_validator("net_overrides", "config_overrides", "classical_overrides", mode="before")
    @classmethod
    def _null_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("config_overrides", mode="before")
    @classmethod
    def _null_row_is_empty(cls, v: Any) -> Any:
        return {k: {} if x is None else x for k, x in v.items()} if isinstance(v, dict) else v

    @field_validator("net_overrides")
    @classmethod
    def _net_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _check_keys(v, NetConfig.keys(), "net")

    @field_validator("config_overrides")
    @classmethod
    def _row_keys(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, row in v.items():
            try:
                _check_keys(row, NetConfig.keys(), "net")
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        return v

    @field_validator("classical_overrides")
    @classmethod
    def _classical_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _check_keys(v, CLASSICAL_KEYS, "classical")

    @model_validator(mode="after")
    def _presets_exist(self) -> CompareSettings:
        from .errors import ChromalabError

        try:
            find_preset(self.net_preset, "net", "net preset")
            for model in ("linear", "svr"):
                find_preset(self.classical_preset, model, f"{model} preset")
        except ChromalabError as e:
            raise ValueError(str(e)) from None
        return self


def load_compare_preset(preset: str) -> dict:
    """The settings of the compare preset ``preset`` (every key of :class:`CompareSettings`), validated."""
    from .errors import ChromalabError

    presets = read_yaml(COMPARE_YAML)
    if preset not in presets:
        raise ChromalabError(f"unknown compare preset {preset!r} (choose {', '.join(presets)})")
    where = f"{COMPARE_YAML} [{preset}]"
    d: dict[str, Any] = {}
    merge(d, presets[preset], where, {}, CompareSettings.keys(), "compare preset key")
    return build(CompareSettings, d, where).model_dump()
