"""Errors meant for people: the CLI prints them as one line, without a traceback."""


class ChromalabError(Exception):
    """A problem the user can act on. The message is one line naming the file and what is wrong."""


class DataError(ChromalabError):
    """The data source is missing, broken or unsafe."""


class ImageError(ChromalabError):
    """One input image cannot be used."""


class ModelError(ChromalabError):
    """A model name, run folder or weights file cannot be loaded."""


class VideoError(ChromalabError):
    """One input video cannot be used, or the output video cannot be written."""


class SettingError(ChromalabError, ValueError):
    """A setting or colour hint given by the user cannot be used (a vividness out of range, a hint
    outside the image, an unreadable colour, hints for a model that takes none). Also a ValueError,
    as the Python API promises."""
