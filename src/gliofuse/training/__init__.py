"""Training: one fold is read (``inputs``), assembled (``assemble``), fitted (``fit``: ``loop``, ``optim``,
``sampling``, ``policies``, ``checkpoint``) and predicted (``predict``); ``fold`` is ``gliofuse train fold``.

Kept import-free, so that the torch-free ``provenance`` module imports without torch.
"""
