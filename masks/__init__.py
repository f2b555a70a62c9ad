"""Built-in mask families; importing this package registers them in ``benchmark.masking.MASKS``.

Add a family by writing ``masks/<name>.py`` with a ``@MASKS.register("<name>")`` class and
appending its module to the import list below.
"""

from masks import box, center, comodgan, folder, lines, square, strokes

__all__ = ["box", "center", "comodgan", "folder", "lines", "square", "strokes"]
