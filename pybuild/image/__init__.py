"""The image store: blobs, manifests, configs, tags, layers and snapshots."""
