"""Everything about a configuration that can be checked before a job starts, with one-line errors.

Order: the YAML file itself (syntax with its line, duplicated keys, non-finite numbers), then the JSON
schema (every error names the dotted key path, the value and what is allowed), then the package's own
checks (registered names, problem options, hyperparameters, what each claim needs). Nothing here
imports torch, so a malformed configuration fails in about a second.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice "
                              f"(first on line {seen[key] + 1}); YAML would keep only the last")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a configuration file; syntax errors and duplicated keys name the file and the line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the configuration ({err.strerror})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(f"{path}: YAML syntax error at {where}: {err.problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a configuration is a mapping of keys, got {type(data).__name__}")
    return data


def key_path(parts: Iterable[Any]) -> str:
    """``experiments.k1.h.start``, with list positions as ``[i]``."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def check_finite(config: Any, where: tuple = ()) -> None:
    """Refuse ``.inf`` and ``.nan`` anywhere: no setting of this pipeline means them."""
    if isinstance(config, float) and not math.isfinite(config):
        raise ConfigError(f"{key_path(where)}: {config} is not a finite number")
    if isinstance(config, dict):
        for k, v in config.items():
            check_finite(v, where + (k,))
    elif isinstance(config, list):
        for i, v in enumerate(config):
            check_finite(v, where + (i,))


def _schema_message(error) -> str:
    """One line for the deepest relevant error of a schema violation."""
    import jsonschema

    # of the alternatives of a oneOf/anyOf, report the one whose type fitted the value and that went deepest
    while error.context:
        error = max(error.context, key=lambda e: (e.validator != "type", len(e.absolute_path), -len(e.schema_path)))
    where = key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        return (f"{where}: unknown key(s) {', '.join(map(repr, extra))}; valid keys: {', '.join(allowed)}"
                if extra else f"{where}: {error.message}")
    if error.validator == "required":
        return f"{where}: {error.message}"
    del jsonschema
    return f"{where}: {error.instance!r} is not allowed: {error.message}"


def check_schema(config: dict[str, Any], schema: str | Path | dict) -> None:
    """The JSON schema, reported as one line naming the key path of the first error found."""
    import jsonschema

    if not isinstance(schema, dict):
        schema = yaml.safe_load(Path(schema).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    # a misspelt key first: it explains the "required" error of the key it was meant to be
    errors = sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)),
                                                                  e.validator != "additionalProperties", str(e.message)))
    if errors:
        raise ConfigError(_schema_message(errors[0]))


def check_config(config: dict[str, Any], schema: str | Path | dict) -> None:
    """Finiteness, then the schema."""
    check_finite(config)
    check_schema(config, schema)


def check_file(path: str | Path, schema: str | Path | dict):
    """Everything checkable before a job: the file, the schema, then the package's checks (plug-ins loaded,
    registered names, problem options, hyperparameters, what each claim needs, the sweep's size).
    Returns the ``plan.Plan``."""
    config = load_yaml(path)
    check_config(config, schema)
    from .plan import make_plan  # imports torch: only once the file and the schema are right

    return make_plan(config, Path(path).resolve().parent)
