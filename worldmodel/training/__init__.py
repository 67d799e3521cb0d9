"""Training: the generic trainer, each model's batches and objective, the shared stage run.

- :mod:`worldmodel.training.trainer`: optimisation loop, loss normalisation, resume;
- :mod:`worldmodel.training.tokenizer` / :mod:`worldmodel.training.dynamics`: what each
  model's training draws per step (batches), its loss (objective) and its held-out check;
- :mod:`worldmodel.training.stage`: what both training stages do around the trainer
  (resume, progress, tracking, writing the model folder, curve and metrics).
"""
