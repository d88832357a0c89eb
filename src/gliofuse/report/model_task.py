"""Every figure of one model x task in one call (rule ``report_model_task``, ``gliofuse report model-task``).

One process draws what ``gliofuse report model``, ``report training`` and ``report attention`` draw one by one,
with the same functions and the same files: the out-of-fold figure, the training curves, the gradient-
coordination dynamics and the attention heatmaps. Each figure reads only its own tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gliofuse.report.attention import plot_attention_
from gliofuse.report.figures import plot_model_task_
from gliofuse.report.style import DEFAULT_DPI
from gliofuse.report.training import plot_gc_dynamics_, plot_training_


def plot_model_task_figures_(*, oof_path: Path, task: str, fold_dirs: Sequence[Path], thumbnails: Sequence[Path],
                             coords: Sequence[Path], out_model: Path, out_training: Path, gc_out_dir: Path,
                             attention_out_dir: Path, out_model_vector: Path | None = None,
                             out_training_vector: Path | None = None, n_patients: int = 3,
                             dpi: int = DEFAULT_DPI) -> None:
    """Write the four figures of one model and task.

    Parameters
    ----------
    oof_path : ``results/evaluation/<model>/<task>/predictions_oof.tsv`` (contract §9).
    task : ``"survival"``, ``"grade"`` or ``"diagnosis"``.
    fold_dirs : the model x task's ``results/training/<model>/<task>/fold_<k>/`` folders, each with
        ``history.tsv`` (and, where recorded, ``gc_dynamics.tsv`` and ``attention.h5``; contract §8, §10).
    thumbnails, coords : the slides' thumbnails and patch-coordinate files (attention heatmaps).
    out_model, out_training : PNGs of the out-of-fold figure and the training curves (SVG twins beside them, or
        ``out_model_vector`` / ``out_training_vector``).
    gc_out_dir, attention_out_dir : folders of the gradient-coordination figure and the heatmaps (left empty
        when no fold recorded any).
    n_patients : heatmaps drawn (``report.attention_patients``).
    dpi : PNG resolution (``report.dpi``).
    """
    plot_model_task_(oof_path=oof_path, task=task, out_png=out_model, out_vector=out_model_vector, dpi=dpi)
    history = [Path(d) / "history.tsv" for d in fold_dirs]
    plot_training_(history_paths=history, out_png=out_training, out_vector=out_training_vector, dpi=dpi)
    plot_gc_dynamics_(history_paths=history, out_dir=gc_out_dir, dpi=dpi)
    plot_attention_(oof_path=oof_path, fold_dirs=fold_dirs, thumbnails=thumbnails, coords=coords,
                    out_dir=attention_out_dir, n_patients=n_patients, dpi=dpi)
