"""worldmodel: a DreamerV4-style video world model of DeepMind Control Suite tasks.

See README.md and docs/ (docs/architecture.md first). Signal level convention: tau = 1 is
clean data, tau = 0 pure noise (docs/forcing.md).
"""
