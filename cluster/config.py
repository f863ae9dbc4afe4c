"""The pipeline config: one YAML file or the equivalent CLI flags, validated before any work.

```yaml
input:  {paths: [data/*.jsonl.gz], format: auto, text_field: text, id_field: id}
output: {path: out/}
stages:
  - length: {min_chars: 1}
batch_size: 10000
parallelism: null        # concurrent read tasks; null = one per CPU in the cluster
ray: {address: null}     # null = start a local Ray; "auto" or ray://host:10001 joins a cluster
```

Every problem is a ``ConfigError`` whose message is one line naming the key and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cluster.recipes import DEFAULT_RECIPE, RecipeError, apply_settings, load_recipe, parse_settings, recipe_stages
from cluster.registry import STAGES, stage_class
from filters.base import Stage
from ingest.readers import (FORMATS, InputError, InputFile, InputSpec, check_remote_output, no_reader_for_any,
                            resolve_inputs)

# The default recipe (cluster/recipes/fineweb.yaml: FineWeb's filters, order and parameters),
# used by `crawlsift run` without --stages, --recipe or a config's stages.
DEFAULT_STAGES = tuple(next(iter(spec)) for spec in load_recipe(DEFAULT_RECIPE).stages)
TOP_KEYS = {"input", "output", "recipe", "set", "stages", "batch_size", "parallelism", "ray", "train"}


class ConfigError(ValueError):
    """A bad config: the message is the one line the user sees."""


@dataclass
class PipelineConfig:
    input: InputSpec
    output: str
    stages: list[Stage]
    batch_size: int = 10_000
    parallelism: int | None = None
    ray_address: str | None = None
    files: list[InputFile] = field(default_factory=list)
    # The recipe the stages came from (None: a stage list given by --stages or the config).
    recipe: str | None = None
    # A ``train:`` section: a train lm job on this run's kept output, run after the filters (train.lm.LMConfig).
    train: object | None = None

    def fingerprint(self) -> str:
        """What must match for a rerun to resume rather than mix two different runs' outputs."""
        body = {
            "input": dataclasses.asdict(self.input) | {"paths": None},
            "stages": [[s.name, s.params()] for s in self.stages],
            "batch_size": self.batch_size,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return {
            "input": dataclasses.asdict(self.input),
            "output": self.output,
            "recipe": self.recipe,
            "stages": [{s.name: s.params()} for s in self.stages],
            "batch_size": self.batch_size,
            "parallelism": self.parallelism,
        }


def load_yaml(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def build_config(
    data: dict,
    *,
    inputs: list[str] | None = None,
    output: str | None = None,
    stages: list[str] | None = None,
    input_format: str | None = None,
    address: str | None = None,
    resolve: bool = True,
    recipe: str | None = None,
    settings: list[str] | None = None,
) -> PipelineConfig:
    """Validate a config mapping, with CLI flags taking precedence, into a PipelineConfig.
    Stages: ``stages`` (names, with their defaults) > ``recipe`` > the config's ``stages`` > the
    config's ``recipe`` > the default recipe; ``settings`` and the config's ``set`` then change
    single parameters (``STAGE.PARAM=VALUE``)."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown key {sorted(unknown)[0]!r} at top level (expected one of: {', '.join(sorted(TOP_KEYS))})")

    input_data = dict(_mapping(data.get("input", {}), "input"))
    if inputs:
        input_data["paths"] = list(inputs)
    if input_format:
        input_data["format"] = input_format
    paths = input_data.get("paths")
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise ConfigError("no input: give input.paths in the config or --input")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ConfigError("input.paths must be a list of paths or globs")
    input_data["paths"] = tuple(paths)
    spec = _dataclass_from(InputSpec, input_data, "input")
    if spec.format not in FORMATS:
        raise ConfigError(f"input.format: {spec.format!r} is not one of {', '.join(FORMATS)}")

    output_data = _mapping(data.get("output", {}), "output")
    bad = set(output_data) - {"path"}
    if bad:
        raise ConfigError(f"unknown key {sorted(bad)[0]!r} in output (expected: path)")
    out = output or output_data.get("path")
    if not out or not isinstance(out, str):
        raise ConfigError("no output: give output.path in the config or --output")

    if data.get("recipe") is not None and data.get("stages") is not None:
        raise ConfigError("give either recipe or stages in the config, not both "
                          "(change a recipe's parameters with set: {STAGE.PARAM: VALUE})")
    try:
        chosen = parse_settings(_mapping(data.get("set"), "set")) | parse_settings(settings)
        recipe_name = None
        if stages is not None:
            stage_specs = apply_settings([{name: {}} for name in stages], chosen, "--stages")
        elif recipe is None and data.get("stages") is not None:
            stage_specs = data["stages"]
            if chosen:
                if not isinstance(stage_specs, list):
                    raise ConfigError("stages must be a list of one-key mappings, e.g. '- length: {min_chars: 1}'")
                stage_specs = apply_settings(stage_specs, chosen, "the config's stages")
        else:
            picked = load_recipe(str(recipe or data.get("recipe") or DEFAULT_RECIPE))
            recipe_name = picked.name
            stage_specs = recipe_stages(picked, chosen)
    except RecipeError as exc:
        raise ConfigError(str(exc)) from None
    built = _build_stages(stage_specs, f"recipe {recipe_name}" if recipe_name else None)

    batch_size = data.get("batch_size", 10_000)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    parallelism = data.get("parallelism")
    if parallelism is not None and (not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1):
        raise ConfigError(f"parallelism must be a positive integer or null, got {parallelism!r}")
    ray_data = _mapping(data.get("ray", {}), "ray")
    bad = set(ray_data) - {"address"}
    if bad:
        raise ConfigError(f"unknown key {sorted(bad)[0]!r} in ray (expected: address)")

    train = None
    if data.get("train") is not None:
        from train.lm import section_config
        from train.models import TrainInputError

        try:
            train = section_config(data["train"], out)
        except (TrainInputError, TypeError) as exc:
            raise ConfigError(f"train: {exc}") from None

    config = PipelineConfig(
        train=train,
        input=spec,
        output=out,
        stages=built,
        batch_size=batch_size,
        parallelism=parallelism,
        ray_address=address or ray_data.get("address"),
        recipe=recipe_name,
    )
    if resolve:
        try:
            config.files = resolve_inputs(spec.paths)
            check_remote_output(out)
        except InputError as exc:
            raise ConfigError(str(exc)) from None
        why = no_reader_for_any(config.files, spec)
        if why:
            raise ConfigError(why)
    return config


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _build_stages(specs, recipe: str | None = None) -> list[Stage]:
    if not isinstance(specs, list):
        raise ConfigError("stages must be a list of one-key mappings, e.g. '- length: {min_chars: 1}'")
    built = []
    for i, item in enumerate(specs):
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"stages[{i}] must be a one-key mapping like '- length: {{min_chars: 1}}'")
        (name, params), = item.items()
        try:
            cls = stage_class(name)
        except KeyError as exc:
            raise ConfigError(f"stages[{i}]: {exc.args[0]}") from None
        where = f"{recipe}: {name}" if recipe else f"stages[{i}].{name}"
        stage = _dataclass_from(cls, _mapping(params, where), where)
        built.append(stage.for_plan() if hasattr(stage, "for_plan") else stage)
        _warn_zero_thresholds(cls, _mapping(params, where), where)
    return built


def _warn_zero_thresholds(cls, params: dict, where: str) -> None:
    """A stage ported from a datatrove filter that reads 0 as "rule off" (``zero_disables_in_datatrove``):
    here 0 is a live threshold (null turns a rule off), so a ported config would silently reject
    (or keep) everything. One warning line per such parameter."""
    if not getattr(cls, "zero_disables_in_datatrove", False):
        return
    for key, value in params.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0 and key != "spaceless_threshold":
            print(f"crawlsift: warning: {where}.{key} = 0 is a live threshold here (datatrove reads 0 as 'rule "
                  f"off'); use null to turn the rule off", file=sys.stderr)


def _dataclass_from(cls, values: dict, where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown parameter {key!r} in {where} (expected one of: {', '.join(fields)})")
        _check_type(value, _resolved_hints(cls)[key], f"{where}.{key}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _resolved_hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _check_type(value, hint, where: str) -> None:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                _check_type(value, option, where)
                return
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        (item_type, *_) = typing.get_args(hint) or (object,)
        for v in value:
            _check_type(v, item_type, where)
        return
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if hint in (int, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{where} must be {hint.__name__}, got {value!r}")


def stage_catalogue() -> dict[str, dict]:
    """Every registered stage with its parameters and defaults (for the CLI and README)."""
    return {
        name: {f.name: f.default for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for name, cls in sorted(STAGES.items())
    }
