"""Containers: OCI runtime spec, namespaced sandbox over overlayfs, network, volumes, cgroups."""
