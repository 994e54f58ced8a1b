"""Training and evaluation: augmentation, the trainer and its public `fit`, evaluation, prediction, reruns."""
