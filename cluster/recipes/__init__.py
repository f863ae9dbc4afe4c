"""Named recipes: a published pipeline as a stage list, its source, and every place it differs.

A recipe is a YAML file in this package (``fineweb`` is the default of ``crawlsift run``) or a
path to one of the same shape::

    name: fineweb
    title: FineWeb (the default)
    source: the paper and the script the stages follow
    requires: {quality.model_path: what to give}      # optional: settings the user must make
    stages:
      - langid: {languages: [en], min_score: 0.65}
      - ...
    differences:
      - every choice that differs from the source, and why

``settings`` (``--set STAGE.PARAM=VALUE`` on the CLI, ``set:`` in a config) change one parameter
of every stage of that name; the value is read as YAML (``0.1``, ``null``, ``[en, fr]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

RECIPE_DIR = Path(__file__).resolve().parent
DEFAULT_RECIPE = "fineweb"


class RecipeError(ValueError):
    """A bad recipe name, file or setting: the message is the one line the user sees."""


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    source: str
    stages: list[dict]
    differences: list[str] = field(default_factory=list)
    requires: dict[str, str] = field(default_factory=dict)
    path: str = ""


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str) -> Recipe:
    """A bundled recipe by name, or a recipe file by path."""
    bundled = RECIPE_DIR / f"{name_or_path}.yaml"
    path = bundled if bundled.is_file() else Path(name_or_path)
    if not path.is_file():
        raise RecipeError(f"unknown recipe {name_or_path!r} (bundled: {', '.join(recipe_names())}; or a path to a recipe YAML)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {path}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list) or not data["stages"]:
        raise RecipeError(f"recipe {path}: needs a non-empty 'stages' list")
    unknown = set(data) - {"name", "title", "source", "stages", "differences", "requires"}
    if unknown:
        raise RecipeError(f"recipe {path}: unknown key {sorted(unknown)[0]!r}")
    return Recipe(name=str(data.get("name") or path.stem), title=str(data.get("title") or ""),
                  source=" ".join(str(data.get("source") or "").split()), stages=data["stages"],
                  differences=[" ".join(str(d).split()) for d in data.get("differences") or []],
                  requires=dict(data.get("requires") or {}), path=str(path))


def parse_settings(items: list[str] | dict | None) -> dict[str, object]:
    """``["fineweb.char_duplicates_ratio=0.1", ...]`` (or a ``set:`` mapping) -> ``{"stage.param": value}``."""
    if not items:
        return {}
    if isinstance(items, dict):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            key, eq, raw = item.partition("=")
            if not eq:
                raise RecipeError(f"--set {item!r}: expected STAGE.PARAM=VALUE")
            try:
                value = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError:
                value = raw
            pairs.append((key.strip(), value))
    out = {}
    for key, value in pairs:
        stage, dot, param = str(key).partition(".")
        if not dot or not stage or not param:
            raise RecipeError(f"setting {key!r}: expected STAGE.PARAM (e.g. fineweb.char_duplicates_ratio)")
        out[f"{stage}.{param}"] = value
    return out


def apply_settings(stage_specs: list, settings: dict[str, object], where: str) -> list[dict]:
    """The stage list with each ``stage.param`` setting applied to every stage of that name."""
    specs = [dict({item: {}} if isinstance(item, str) else item) for item in stage_specs]
    specs = [{name: dict(params or {})} for spec in specs for name, params in spec.items()]
    for key, value in settings.items():
        stage, param = key.split(".", 1)
        hits = [spec[stage] for spec in specs if stage in spec]
        if not hits:
            raise RecipeError(f"setting {key!r}: {where} has no stage {stage!r} "
                              f"(its stages: {', '.join(next(iter(s)) for s in specs)})")
        for params in hits:
            params[param] = value
    return specs


def recipe_stages(recipe: Recipe, settings: dict[str, object]) -> list[dict]:
    """The recipe's stage list with the settings applied; every ``requires`` entry must be set."""
    specs = apply_settings(recipe.stages, settings, f"recipe {recipe.name}")
    for key, what in recipe.requires.items():
        stage, param = key.split(".", 1)
        if any((spec.get(stage) or {}).get(param) is None for spec in specs if stage in spec):
            raise RecipeError(f"recipe {recipe.name} needs {key}: {' '.join(str(what).split())}")
    return specs


def describe_recipe(recipe: Recipe) -> str:
    """What ``crawlsift recipes NAME`` prints."""
    lines = [f"{recipe.name}: {recipe.title}", f"source: {recipe.source}", "stages:"]
    for spec in recipe.stages:
        (name, params), = spec.items()
        shown = ", ".join(f"{k}={v}" for k, v in (params or {}).items())
        lines.append(f"  {name}" + (f" ({shown})" if shown else ""))
    for key, what in recipe.requires.items():
        lines.append(f"requires {key}: {' '.join(str(what).split())}")
    if recipe.differences:
        lines.append("differences from the source:")
        lines += [f"  - {d}" for d in recipe.differences]
    return "\n".join(lines)
