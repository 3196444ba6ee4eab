"""The offline ``local`` engine (``--engine local``).

Importing this package is cheap (numpy at most); OpenCV, ai-edge-litert and onnxruntime are only
loaded inside the worker processes when the first image is analysed.
"""

from .engine import CAPABILITIES, LocalEngine
from .models import ModelsMissingError, ensure_installed, install, models_dir

__all__ = ["CAPABILITIES", "LocalEngine", "ModelsMissingError", "ensure_installed", "install", "models_dir"]
