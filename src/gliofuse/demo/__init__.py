"""Embedded demo cohort: a seeded, TCGA-like synthetic cohort in real GDC file formats.

Public API (import from the submodules; this package imports nothing so that ``plan`` stays cheap):

* ``gliofuse.demo.plan.plan_cohort(*, seed, cfg) -> CohortPlan``: ids, latent factors, labels, survival and
  the list of files, without pixel work (numpy + stdlib; the Snakefile calls it at parse time).
* ``gliofuse.demo.build.generate_cohort_(*, seed, cfg, out_dir, progress=True, workers=None) -> CohortPlan``:
  writes slides, STAR - Counts files, GDC metadata, the molecular table and the ground truth.

Modules: ``latent`` (latent factors -> labels and survival), ``plan`` (ids and file plan), ``tissue``
(H&E slide synthesis), ``svs`` (Aperio SVS writer), ``expression`` (STAR - Counts files), ``gdc_records``
(GDC ``/files`` and ``/cases`` JSON), ``clinical_tables`` (molecular and ground-truth TSV), ``resources``
(shipped assets, see ``assets/README.md``), ``build`` (writes everything).

External site (``gliofuse demo external``, ``demo.external``): ``site_plan`` (patients of another hospital from
the same model), ``stain`` (H&E stain shift), ``slide_formats`` (generic tiled TIFF and DICOM WSI writers),
``site_build`` (writes the site as a ``cohort: sheet`` input: slide sheet, clinical CSV with its own columns, TPM
matrix, ``cohort.yaml``, ground truth).
"""
