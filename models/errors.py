"""Exceptions of the models package."""


class ModelError(Exception):
    """A model file is missing, broken, or not what the caller expected."""


class BackendUnavailable(ModelError):
    """The requested inference backend cannot be imported or used here."""
