"""The package version, in a module of its own so that any layer can read it without importing the
package's front door (``chromalab/__init__.py`` imports the front ends)."""

__version__ = "0.1.0"
