"""Performance benchmarks of stockclf, reported as ratios measured side by side.

``python -m benchmarks`` runs the suite and writes ``benchmarks/RESULTS.md``;
``python -m benchmarks --smoke`` runs every row at tiny sizes (a test does, so it keeps
working). ``benchmarks/gpu.py`` is the GPU throughput script; ``bench_prepare.py`` the
prepare-at-scale benchmark. None of these are tests: timings on shared machines are noisy.
"""
