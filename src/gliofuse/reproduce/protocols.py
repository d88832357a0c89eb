"""The published protocols as data: their splits, the numbers to compare with and the notes of the report.

Two protocols are reproduced on the omics side (docs/validation.md has the sources and the analysis):

* ``pf``: Pathomic Fusion (Chen et al., IEEE TMI 2020), 15 train/test splits numbered 1..15.
* ``mcat``: MCAT (Chen et al., ICCV 2021), 5 folds numbered 0..4 (the ``val`` fold is the test set).

Nothing here reads files or imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PROTOCOLS: tuple[str, ...] = ("pf", "mcat")
PF_SPLITS: tuple[int, ...] = tuple(range(1, 16))
MCAT_SPLITS: tuple[int, ...] = tuple(range(5))


@dataclass(frozen=True)
class PublishedResult:
    """A published number to compare with: ``value`` ± ``pm`` (``pm_kind`` says what the ± is)."""

    protocol: str
    task: str
    metric: str
    value: float
    pm: float
    pm_kind: str
    source: str


PUBLISHED: tuple[PublishedResult, ...] = (
    PublishedResult("pf", "survival", "c_index", 0.808, 0.014, "95% t-interval half-width over the 15 splits",
                    "Pathomic Fusion (Chen et al., IEEE TMI 2020), Genomic SNN, Evaluation.ipynb: 0.8081 +- 0.014; "
                    "checkpoints surv_15_rnaseq (input_size_omic 320: the 80 features + 240 RNA-seq z-scores)"),
    PublishedResult("pf", "grade", "auc_micro", 0.872, math.nan, "not published",
                    "Pathomic Fusion, Genomic SNN grade (grad_15, input_size_omic 80): micro-AUC 0.8717, "
                    "computed on ROI rows"),
    PublishedResult("pf", "grade", "accuracy", 0.670, math.nan, "not published",
                    "Pathomic Fusion, Genomic SNN grade: micro-F1 0.6703 (= accuracy for single-label classes)"),
    PublishedResult("mcat", "survival", "c_index", 0.598, 0.054, "SD over the 5 folds",
                    "MCAT (Chen et al., ICCV 2021) repository results: SNN on signature genes, 5-fold val C-index"),
)
"""Targets of the reproduction (docs/validation.md)."""


def published_result(protocol: str, task: str, metric: str) -> PublishedResult | None:
    """The published value of ``metric`` for ``protocol``/``task``; None when the paper gives none."""
    return next((r for r in PUBLISHED if (r.protocol, r.task, r.metric) == (protocol, task, metric)), None)


PROTOCOL_NOTES: dict[str, tuple[str, ...]] = {
    "pf": (
        ("Table: Pathomic Fusion `all_dataset.csv` (80 features: IDH mutation, 1p/19q codeletion, 40 gene-level and "
         "38 arm-level copy-number values) joined with `grade_data.csv`; 15 `pnas_splits.csv` train/test splits."),
        ("Labels: event = 1 - `censored` (the file's 1 means alive); `Survival months` holds days and is used as "
         "days; grade = Grade - 2; patients without a molecular subtype (72) are dropped, and for grade also those "
         "without a grade (33), as PF's `ignore_missing_moltype` / `ignore_missing_histype`."),
        ("Inputs: training-split median imputation (3 patients keep a gap after the drop), then z-scoring with the "
         "training split's statistics (PF's StandardScaler)."),
        ("Training (PF's `train_opt.txt` of grad_15/omic and surv_15_rnaseq/omic): the patient's vector is "
         "repeated once per ROI (`Region count`; PF trains on ROI rows); SNN 80-64-48-32-32 (Linear + ELU + "
         "AlphaDropout 0.25, PF's MaxNet), Adam lr 2e-3, L2 5e-4, L1 3e-4 on all parameters (`reg_type all`), "
         "batch 64, 50 epochs, linear decay (PF `lr_policy linear`), no early stopping, the last epoch's "
         "weights. Heads differ: a linear risk (PF: sigmoid x 6 - 3) and softmax cross-entropy (PF: "
         "LogSoftmax + NLL, the same loss)."),
        ("Evaluation: C-index per patient on each split's test patients (PF averages the ROI hazards of a "
         "patient, which for an omics-only model is the patient's own); grade metrics on ROI rows as PF's "
         "`calcGradMetrics`. The published ± of PF is a 95 % t-interval half-width over the 15 splits."),
    ),
    "mcat": (
        ("Table: MCAT/PORPOISE `tcga_gbmlgg_all_clean.csv.zip` (569 patients); features: `*_rnaseq/_cnv/_mut` "
         "columns of genes in the six `signatures.csv` families; 5 folds from `splits_<k>.csv` (val = test)."),
        ("Labels: event = 1 - `censorship` (1 means censored); `survival_months` in months, converted to days "
         "(x 30.4375); 4 bins at the quartiles of the uncensored patients' times (pd.qcut), outer edges widened."),
        "Inputs: z-scored with the training fold's statistics (MCAT's StandardScaler).",
        ("Training (MCAT `main.py` defaults and the SNN run's `experiment_*.txt`): SNN 'small' 4 x 256 (Linear + "
         "ELU + AlphaDropout 0.25), Adam lr 2e-4, L2 1e-5, batch 32 (MCAT: batch 1 with 32-step gradient "
         "accumulation, the same mean NLL gradient), L1 on all parameters 3.2e-3 per step (MCAT: lambda_reg 1e-4 "
         "added to each of the 32 accumulated losses), balanced sampling over (bin, censorship) classes "
         "(`weighted_sample`), 20 epochs, discrete-time NLL (alpha 0), the val fold scored with the last "
         "epoch's weights."),
    ),
}
"""The protocol as run, one report bullet per entry (``## Protocols as run``)."""

KNOWN_DIFFERENCES: tuple[str, ...] = (
    ("PF survival: the published SNN (0.808) had 320 inputs (these 80 + 240 RNA-seq z-scores, not public) "
     "and, through PF's inner join with the RNA-seq table, only patients with RNA-seq. On those patients "
     "(`rnaseq`: the PF patients listed in the MCAT table, 489 of 697) the 80-feature SNN matches; on all "
     "697 it does not (`all`): the patient set, not the missing RNA features, explains most of the gap."),
    ("PF grade: same 80 features, and now PF's own optimisation (ELU, L1 3e-4, linear decay, last "
     "epoch); see docs/validation.md for the result next to the earlier SELU / no-L1 run."),
    ("MCAT: with MCAT's own optimisation the SNN collapses: its L1 term (lambda_reg 1e-4 added to each "
     "of the 32 accumulated batch-1 losses, 3.2e-3 per step) outweighs the NLL about 30:1 at the start and "
     "drives the weights to near zero, so the risks are almost constant (C-index about 0.50, below the "
     "published 0.598). Without that accumulation (l1 1e-4 per step) or without L1 the same SNN reaches "
     "0.79 (docs/validation.md): the weak published SNN is consistent with an L1-dominated fit, not with "
     "the input (IDH1 excluded either way)."),
    ("Left as approximations: MCAT's batch-1 accumulation (batch 32 instead), PF's bounded risk head, "
     "the seeds (PF 2019, MCAT 1 per fold; here config seed + split)."),
)
"""Where the runs differ from the published ones, one report bullet per entry (``## Known differences ...``)."""
