"""Developer tools, run from the repository root as modules: `python -m tools.<name>`."""
