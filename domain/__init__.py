"""The pure core of the failback: models, phases, rules and decisions.

Nothing here does I/O or imports Temporal, the Azure SDK or pyVmomi (tests/unit/test_layers.py
enforces it), so every rule can be proven by unit and property tests alone.
"""
