"""wbcbench: white-blood-cell recognition under domain shift, as an executable paper.

Data flow, one module per step: sources/datasets -> cache -> loader (+ augment) -> models/networks ->
train -> evaluate (bn: AdaBN, batch statistics, TENT) -> rundir -> collect -> stats/tables/study -> book.
Around it: profiles (the settings schema), grids/sweep/launchers (many runs), reproduce, download, predict.
"""
__version__ = "0.1.0"
