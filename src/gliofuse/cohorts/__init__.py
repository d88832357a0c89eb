"""Cohort entry contract: the slide sheet (one row per slide) that every workflow route writes and reads."""
