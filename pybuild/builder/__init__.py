"""Syntax tree -> typed instructions -> stage graph -> image."""
