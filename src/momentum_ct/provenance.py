"""Fingerprints of the code a stage runs, so that editing it reruns exactly what depends on it.

A stage's code is the import closure, within this package, of the modules it starts from (found by
reading their ``import`` statements, lazy ones included), plus any plug-in files it depends on. The
fingerprint is a hash of those files' bytes; the workflow passes it to a job as a parameter, and a
changed parameter reruns the job.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path
from typing import Iterable

PACKAGE = __name__.rsplit(".", 1)[0]
ROOT = Path(__file__).resolve().parent


def _module_file(module: str) -> Path | None:
    """The source file of a module of this package, or ``None`` when it is not one."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    parts = module.split(".")[1:]
    base = ROOT.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


@functools.lru_cache(maxsize=None)  # a workflow asks for the closures of dozens of jobs: read each file once
def _imports(module: str, path: Path) -> frozenset[str]:
    """Modules of this package that ``path`` imports (absolute or relative, anywhere in the file)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)  # ``from . import k1`` names submodules
    # importing a submodule runs every package __init__ above it
    parents = {".".join(m.split(".")[:i]) for m in out for i in range(1, m.count(".") + 1)}
    return frozenset(m for m in out | parents if _module_file(m) is not None)


@functools.lru_cache(maxsize=None)
def closure(modules: tuple[str, ...]) -> tuple[Path, ...]:
    """Source files of ``modules`` and of everything in this package they import, transitively."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        path = _module_file(module)
        if path is None:
            continue
        seen[module] = path
        todo.extend(_imports(module, path) - set(seen))
    return tuple(sorted(set(seen.values())))


def module_of(obj) -> str:
    """The module a function lives in, or the module part of a ``"module:function"`` reference."""
    return obj.partition(":")[0] if isinstance(obj, str) else obj.__module__


def fingerprint(modules: Iterable[str], files: Iterable[str | Path] = ()) -> str:
    """Hash of the closure of ``modules`` (this package's) and of ``files`` (plug-ins), by content."""
    digest = hashlib.sha256()
    paths = [(p.relative_to(ROOT).as_posix(), p) for p in closure(tuple(sorted(set(modules))))]
    paths += [(Path(f).name, Path(f)) for f in sorted(set(map(str, files)))]
    for name, path in paths:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
