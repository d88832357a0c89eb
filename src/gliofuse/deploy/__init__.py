"""Deployment: export a trained model as a bundle, and apply a bundle to new patients (``gliofuse predict``)."""
