"""What every trainer's config shares: YAML presets layered into one validated pydantic model.

A trainer's config is a :class:`ConfigModel` subclass (``training.config.NetConfig``,
``classical.config.LinearConfig`` / ``SVRConfig``, ``compare_config.CompareSettings``): its fields
are the defaults, their types are checked strictly (no string-to-number guessing: ``--set
epochs=two`` is an error, not a surprise), and unknown keys are refused. Layers (a preset file,
its sections, ``--set``) are merged as plain dicts with :func:`merge`, which remembers where each
key came from, then validated once with :func:`build`; every problem is one line naming the file
(or ``--set``) and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ChromalabError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
"""The shipped presets: ``net_<preset>.yaml``, ``linear_<preset>.yaml``, ``svr_<preset>.yaml``, ``compare.yaml``."""
YAML_SUFFIXES = (".yaml", ".yml")

M = TypeVar("M", bound="ConfigModel")

PosInt = Annotated[int, Field(ge=1)]
Limit = Annotated[int, Field(ge=1)] | None
"""An image count: a positive integer, or None for every image of the split."""
PosNum = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]


class ConfigModel(BaseModel):
    """A config: strict types, no unknown keys, checked again when a field is assigned."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)


def read_yaml(path: Path) -> dict:
    """A YAML file whose top level is a mapping (an empty file is ``{}``)."""
    import yaml

    try:
        d = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ChromalabError(f"{path}: unreadable YAML ({type(e).__name__}: {e})".replace("\n", " ")) from None
    if not isinstance(d, dict):
        raise ChromalabError(f"{path}: expected a mapping at the top level")
    return d


def is_yaml_path(preset: str) -> bool:
    return Path(preset).suffix in YAML_SUFFIXES


def find_preset(preset: str, prefix: str, what: str = "preset") -> Path:
    """``preset`` as a file: a ``.yaml`` path as given, else ``CONFIG_DIR/<prefix>_<preset>.yaml``."""
    p = Path(preset).expanduser()
    if is_yaml_path(preset):
        if not p.is_file():
            raise ChromalabError(f"{p}: config file not found")
        return p
    q = CONFIG_DIR / f"{prefix}_{preset}.yaml"
    if not q.is_file():
        names = sorted(f.stem[len(prefix) + 1 :] for f in CONFIG_DIR.glob(f"{prefix}_*.yaml"))
        raise ChromalabError(f"unknown {what} {preset!r} (choose from {', '.join(names)}, or a .yaml path)")
    return q


def merge(d: dict, updates: Any, where: str, origin: dict[str, str], known: tuple[str, ...],
          what: str = "config key") -> None:
    """``d.update(updates)`` after checking every key is in ``known``; ``origin[key] = where``."""
    if not isinstance(updates, dict):
        raise ChromalabError(f"{where}: expected a mapping of config keys, got {type(updates).__name__}")
    for k, v in updates.items():
        if k not in known:
            raise ChromalabError(f"{where}: unknown {what} {k!r} (known: {', '.join(known)})")
        d[k] = v
        origin[k] = where


def build(cls: type[M], d: dict, where: str, origin: dict[str, str] | None = None) -> M:
    """``cls(**d)``; a validation error becomes one line naming the key and the layer that set it
    (``origin``; ``where`` for keys no layer set and for checks across several keys)."""
    try:
        return cls(**d)
    except ValidationError as e:
        raise ChromalabError(describe_error(e, where, origin or {})) from None


def describe_error(e: ValidationError, where: str, origin: dict[str, str]) -> str:
    """The first error of ``e`` as ``<where>: <key>: <what is wrong> (got <value>)``."""
    err = e.errors(include_url=False)[0]
    loc = [str(x) for x in err["loc"]]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not loc:  # a check across several fields (model validator): its message names them
        return f"{where}: {msg}"
    src = origin.get(loc[0], where)
    if err["type"] == "missing":
        return f"{src}: {'.'.join(loc)} is missing"
    msg = msg[:1].lower() + msg[1:]
    if err["type"] != "value_error":  # pydantic's own checks do not say what they got; ours do
        msg += f" (got {err.get('input')!r})"
    return f"{src}: {'.'.join(loc)}: {msg}".replace("\n", " ")


def write_yaml(path: Path, cfg: BaseModel, head: str) -> None:
    """``cfg`` as YAML in field order under the comment line ``head``."""
    import yaml

    path.write_text(f"# {head}\n" + yaml.safe_dump(cfg.model_dump(), sort_keys=False))
