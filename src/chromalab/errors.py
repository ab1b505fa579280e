"""Errors meant for people: the CLI prints them as one line, without a traceback."""


class ChromalabError(Exception):
    """A problem the user can act on. The message is one line naming the file and what is wrong."""


class DataError(ChromalabError):
    """The data source is missing, broken or unsafe."""


class ImageError(ChromalabError):
    """One input image cannot be used."""


class ModelError(ChromalabError):
    """A model name, run folder or weights file cannot be loaded."""
