"""gliofuse: multi-modal (WSI + genomics) glioma diagnosis, grading and survival prediction."""

__version__ = "0.1.0"
