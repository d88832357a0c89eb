"""`gliofuse report model-task`: one process writes the same files as `report model`, `training` and `attention`."""

from __future__ import annotations

import shutil
from pathlib import Path

from gliofuse.cli import main
from gliofuse.report.attention import plot_attention_
from gliofuse.report.figures import plot_model_task_
from gliofuse.report.training import plot_gc_dynamics_, plot_training_
from tests.unit.report.test_report_attention import _setup
from tests.unit.report.test_report_training import _folds


def _fold_dirs(tmp_path: Path) -> tuple[Path, list[Path], list[Path], list[Path]]:
    """Fold folders with attention.h5 (test_report_attention) plus history/gc_dynamics (test_report_training)."""
    oof, dirs, thumbs, coords = _setup(tmp_path, "h5")
    for src, dst in zip(_folds(tmp_path / "hist"), dirs, strict=True):
        shutil.copy(src, dst / "history.tsv")
        shutil.copy(src.with_name("gc_dynamics.tsv"), dst / "gc_dynamics.tsv")
    return oof, dirs, thumbs, coords


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_one_job_writes_the_three_jobs_files(tmp_path: Path) -> None:
    oof, dirs, thumbs, coords = _fold_dirs(tmp_path)
    one, three = tmp_path / "one", tmp_path / "three"
    # the merged command first; then the three figures one by one in the reverse order, so that a figure that
    # changed global plotting state for the next one would show up as a difference
    args = ["report", "model-task", "--oof", str(oof), "--task", "survival", "--fold-dirs", *map(str, dirs),
            "--thumbnails", *map(str, thumbs), "--coords", *map(str, coords), "--out-model", str(one / "m.png"),
            "--out-training", str(one / "m_training.png"), "--gc-out-dir", str(one / "m_gc"),
            "--attention-out-dir", str(one / "m_attention"), "--n-patients", "2", "--dpi", "60"]
    assert main(args) == 0
    plot_attention_(oof_path=oof, fold_dirs=dirs, thumbnails=thumbs, coords=coords, out_dir=three / "m_attention",
                    n_patients=2, dpi=60)
    history = [d / "history.tsv" for d in dirs]
    plot_gc_dynamics_(history_paths=history, out_dir=three / "m_gc", dpi=60)
    plot_training_(history_paths=history, out_png=three / "m_training.png", dpi=60)
    plot_model_task_(oof_path=oof, task="survival", out_png=three / "m.png", dpi=60)
    merged, separate = _files(one), _files(three)
    assert {"m.png", "m.svg", "m_training.png", "m_training.svg", "m_gc/gc_dynamics.png",
            "m_gc/gc_dynamics.svg"} < set(merged)
    assert len([n for n in merged if n.startswith("m_attention/")]) == 4  # 2 patients x (png + svg)
    assert merged == separate


def test_bad_input_names_the_file(tmp_path: Path, capsys) -> None:
    oof, dirs, thumbs, coords = _fold_dirs(tmp_path)
    (dirs[1] / "history.tsv").write_text("epoch\tlr\n1\t0.1\n")
    args = ["report", "model-task", "--oof", str(oof), "--task", "survival", "--fold-dirs", *map(str, dirs),
            "--thumbnails", *map(str, thumbs), "--coords", *map(str, coords), "--out-model", str(tmp_path / "m.png"),
            "--out-training", str(tmp_path / "t.png"), "--gc-out-dir", str(tmp_path / "gc"),
            "--attention-out-dir", str(tmp_path / "att")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "neither 'train_loss' nor 'val_loss'" in err and str(dirs[1] / "history.tsv") in err
