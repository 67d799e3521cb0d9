"""Neural networks: transformer blocks, the video tokenizer, the dynamics model."""
