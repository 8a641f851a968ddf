"""Dockerfile text -> syntax tree: directives, continuations, heredocs, words, .dockerignore."""
