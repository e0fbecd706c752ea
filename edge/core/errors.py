"""Exceptions of the edge package; the CLI turns them into messages and exit codes."""


class ShelfIDError(Exception):
    """Base of every error ShelfID reports to a person."""


class ConfigError(ShelfIDError):
    """The config is invalid; `problems` holds one line per problem."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(problems))


class ConfigFileError(ShelfIDError):
    """The config file is missing, unreadable or not YAML at all."""


class ImageError(ShelfIDError):
    """An image file is empty, truncated, too large or not an image."""


class CatalogError(ShelfIDError):
    """A catalog folder is missing, incomplete, or built with other models."""
