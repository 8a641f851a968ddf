"""The command lines. The only place that prints, parses flags and maps errors to exit codes."""
