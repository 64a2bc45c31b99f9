# arcopy firmware: the package that runs on a board (MicroPython) and on the host (CPython).
