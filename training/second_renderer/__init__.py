"""Independent second renderers, used for evaluation only, never for training.

They are written without reference to the project's first (training) phantom renderers, so that a model
which has only learned the quirks of the training renderer does not score well here by accident. Do not
train on, augment with, or tune hyper-parameters against their output.
"""
