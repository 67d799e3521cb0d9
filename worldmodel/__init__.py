"""worldmodel: a DreamerV4-style video world model of DeepMind Control Suite tasks.

See README.md and ../shared/DESIGN.md. Signal level convention: tau = 1 is clean data.
"""
