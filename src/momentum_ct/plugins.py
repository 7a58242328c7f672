"""A user's own problems, methods and claims, from modules named in the config's ``plugins`` list.

Each entry is a path to a ``.py`` file (relative to the folder of the config file that names it) or
an importable module name. Importing it runs its ``register_problem`` / ``register_method`` /
``register_claim`` calls; nothing else is required of it. Each file is loaded once per process.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError


@dataclass(frozen=True)
class Plugin:
    """One loaded plug-in: where its code lives and which registry names it added."""

    entry: str
    path: Path
    registered: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # (kind, name)


_LOADED: dict[str, Plugin] = {}


def _registries() -> dict[str, dict]:
    from .claims.registry import CLAIMS
    from .optim import METHODS
    from .problems import PROBLEMS

    return {"problem": PROBLEMS, "method": METHODS, "claim": CLAIMS}


def _names() -> set[tuple[str, str]]:
    return {(kind, name) for kind, registry in _registries().items() for name in registry}


def resolve(entry: str, base: Path) -> Path:
    """The file of a plug-in entry: a ``.py`` path (relative to ``base``) or a module name."""
    if entry.endswith(".py") or "/" in entry:
        path = (base / entry).resolve()
        if not path.is_file():
            raise ConfigError(f"plugins: file {entry!r} not found (paths are relative to {base})")
        return path
    spec = importlib.util.find_spec(entry)
    if spec is None or spec.origin is None:
        raise ConfigError(f"plugins: module {entry!r} cannot be imported (not a file ending in .py either)")
    return Path(spec.origin).resolve()


def load(entries: list[str], base: str | Path = ".") -> list[Plugin]:
    """Import every plug-in (once per process) and return what each registered."""
    base = Path(base)
    out = []
    for entry in entries:
        path = resolve(entry, base)
        key = str(path)
        if key not in _LOADED:
            before = _names()
            name = "momentum_ct_plugin_" + hashlib.sha1(key.encode()).hexdigest()[:12]
            try:
                if entry.endswith(".py") or "/" in entry:
                    spec = importlib.util.spec_from_file_location(name, path)
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[name] = module
                    spec.loader.exec_module(module)
                else:
                    importlib.import_module(entry)
            except ConfigError as err:
                raise ConfigError(f"plugins: {entry}: {err}") from None
            _LOADED[key] = Plugin(entry, path, frozenset(_names() - before))
        out.append(_LOADED[key])
    return out
