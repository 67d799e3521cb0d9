"""Evaluation of a tokenizer + dynamics pair on held-out episodes: the Evaluator
(``rollouts``), headline numbers (``summary``), intervals (``stats``) and a whole store
as the `evaluate` stage scores it (``evaluate_store``)."""
