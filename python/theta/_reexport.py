"""Copies the public names of an extension submodule into a pure-Python module."""


def reexport(source, namespace):
    """Puts every public attribute of ``source`` into ``namespace``; returns their names."""
    names = [name for name in dir(source) if not name.startswith("_")]
    for name in names:
        namespace[name] = getattr(source, name)
    return names
