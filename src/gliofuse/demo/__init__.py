"""Embedded demo cohort: a seeded, TCGA-like synthetic cohort in real GDC file formats."""
