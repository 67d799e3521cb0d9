"""``wm``: the command line for humans (``wm -h``). It groups the DVC stages
(``stages/``) with project helpers: presets and the params reference, comparing
experiments, rendering plots, verifying files. The library (``worldmodel/``) never
imports it."""
