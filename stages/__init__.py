"""DVC stages: thin Typer commands that parse params and call the ``worldmodel`` library.

Each stage module serves ``dvc.yaml`` as ``python -m stages.<name>`` and exposes a plain
``run(params, ...)`` that tests import; the ``wm`` package groups them for humans as ``wm <name>``.
"""
