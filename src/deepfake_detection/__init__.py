"""Deepfake image detection: real photographs vs GAN-generated images, as an MLflow project.

Labels everywhere: ``fake`` = 1 (the positive class), ``real`` = 0.
"""

__version__ = "0.1.0"
