"""``make bench``: the real pipeline under stepped load, next to two Faust baselines.

``python -m bench.run`` is the driver; ``python -m bench.baselines {bare,naive} worker``
runs one of the baseline apps (started by the driver). See docs/benchmarks.md.
"""
