"""Continuous-time analysis of momentum methods: the discrete methods, problems, training,
continuous-time predictions, and the claims they are judged against."""
from .errors import ConfigError

__version__ = "0.1.0"
__all__ = ["ConfigError", "__version__"]
