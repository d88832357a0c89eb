"""Figures and tables for the report (matplotlib, Agg backend; no torch)."""
