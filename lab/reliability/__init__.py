"""The reliability matrix: cases run against a real lab (harness.py, cases.py, bad_input.py).

`python -m lab.reliability` runs the whole matrix and rewrites RELIABILITY.md; tests/reliability
runs a representative subset of the same cases under pytest.
"""
