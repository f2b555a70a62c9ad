"""An outside plug-in package for inpaint-bench, written from its README's "Write a plug-in".

Nothing here registers itself on import: the entry points in pyproject.toml name the classes
and the factories, and inpaint-bench loads them when they are asked for.
"""
