"""Permeability peers of ``benchmarks/simulate.py``; each module runs in the peers' interpreter."""
