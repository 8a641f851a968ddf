"""The build cache: versioned step keys and their SQLite index."""
