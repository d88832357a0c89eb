"""Reproduction of published TCGA-GBMLGG omics results under the papers' own protocols (``gliofuse validate``).

One module per step: :mod:`~gliofuse.reproduce.protocols` (splits, published numbers and report notes as
data), :mod:`~gliofuse.reproduce.tables` (loaders of the published tables),
:mod:`~gliofuse.reproduce.preprocess` (per-split imputation and scaling), :mod:`~gliofuse.reproduce.jobs`
(the job list; imported by the workflow), :mod:`~gliofuse.reproduce.fit` (one job through the training
harness), :mod:`~gliofuse.reproduce.summary` (metrics and summary), :mod:`~gliofuse.reproduce.report`
(Markdown and figure) and :mod:`~gliofuse.reproduce.run` (the ``report`` and ``run`` entry points).

The package sits above ``training``, ``evaluation`` and ``report``; none of them imports it.
"""
