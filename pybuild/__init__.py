"""pybuild: build OCI images from Dockerfiles and run them, daemonless, on one Linux host."""

from pybuild import dataclass_cache as _dataclass_cache

__version__ = "0.1.0"

# before any of our modules defines a dataclass: their methods' bytecode comes from a cache
_dataclass_cache.install()
