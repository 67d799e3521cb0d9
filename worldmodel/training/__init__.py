"""Training: the generic trainer, each model's objective, the shared stage run.

- :mod:`worldmodel.training.trainer`: optimisation loop, loss normalisation, resume;
- :mod:`worldmodel.training.mae_objective`: the tokenizer's masked-autoencoding objective
  (batches with their patch keep masks, loss, held-out check);
- :mod:`worldmodel.training.forcing_objective`: the dynamics' diffusion/shortcut-forcing
  objective (batches with per-frame signal levels, loss, held-out rollout check);
- :mod:`worldmodel.training.stage`: what both training stages do around the trainer
  (resume, progress, tracking, writing the model folder, curve and metrics).
"""
