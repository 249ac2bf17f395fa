"""hookline: self-hosted webhook delivery whose retries do not lose deliveries."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hookline")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
