"""Training for keras-sknet: input pipelines (`training.data`), recipes and the trainer.

Run from the repository root (`python -m training...`); not installed with the library.
"""
