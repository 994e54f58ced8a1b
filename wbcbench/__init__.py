"""wbcbench: white-blood-cell recognition under domain shift, as an executable paper.

Data flow (one module each): datasets -> cache -> loader -> models -> train -> rundir -> collect.
"""
__version__ = "0.1.0"
