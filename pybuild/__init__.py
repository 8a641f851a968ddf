"""pybuild: build OCI images from Dockerfiles and run them, daemonless, on one Linux host."""

__version__ = "0.1.0"
