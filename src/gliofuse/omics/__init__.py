"""RNA-seq: GDC STAR - Counts files → patient × gene expression matrix."""
