"""Tiny ImageNet access (zip or folder), download, and the prepared Lab cache."""
