"""TCGA acquisition from the NCI Genomic Data Commons (GDC).

* ``client``: HTTP client for the GDC API (POST queries, pagination, retries with back-off, optional token).
* ``query``: the cohort query (diagnostic slides, STAR - Counts files, clinical cases) and the manifest.
* ``manifest``: the manifest TSV (``id filename md5 size state kind patient_id``), file-name checks, layout.
* ``download``: per-file download with HTTP Range resume, size + md5 verification and atomic rename.

The GDC API test double the tests run against lives in ``tests/fakes/gdc_double.py``.
"""
