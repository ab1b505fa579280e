"""The package version, in a module of its own so that any layer can read it without importing the
package's front door (``chromalab/__init__.py`` imports the front ends)."""

__version__ = "0.1.0"


def git_commit() -> str | None:
    """The short hash of the checkout this package runs from (None outside a git checkout): what the
    reports write beside their numbers."""
    import subprocess
    from pathlib import Path

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
