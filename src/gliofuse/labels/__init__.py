"""Patient labels: survival from GDC clinical records, WHO-2021 classes and grades from molecular tables."""
