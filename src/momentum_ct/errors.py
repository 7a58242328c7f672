"""Errors raised on bad user input (never asserts: they vanish under ``python -O``)."""


class ConfigError(ValueError):
    """A configuration value is missing, misspelt, of the wrong type or out of range."""


def unknown_name(kind: str, name: str, valid) -> ConfigError:
    """Error for a name that is not in a registry; lists the valid names."""
    return ConfigError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid))}")
