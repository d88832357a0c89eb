"""Cohort assembly, patient-level splits, datasets and collation."""
