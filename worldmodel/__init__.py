"""worldmodel: a DreamerV4-style video world model of DeepMind Control Suite tasks.

See README.md and docs/ (docs/architecture.md first).
"""
