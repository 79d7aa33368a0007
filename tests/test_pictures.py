"""Pictures: a task drawn as rows of images per label (`taskdisc show`), and a sweep's figures."""
from __future__ import annotations

import numpy as np
from PIL import Image

from orchestrator.cli import main
from orchestrator.results.plots import agreement_figures


def test_show_draws_a_row_of_images_per_label(tmp_path, tiny_dataset_tar, capsys):
    out = tmp_path / "real0.png"
    args = ["--dataset", "imagefolder", "--root", str(tiny_dataset_tar), "-o", str(out)]
    assert main(["show", "real", "0", *args]) == 0
    assert "real-0" in capsys.readouterr().out
    picture = np.asarray(Image.open(out).convert("L"), dtype=float)
    top, bottom = picture[: len(picture) // 2], picture[len(picture) // 2:]
    assert picture.shape[1] > 500 and top.std() > 10 and bottom.std() > 10  # two rows of images, not blank
    assert main(["show", "random", "3", "--num-classes", "3", *args]) == 0


def test_show_bad_input_is_one_line(tmp_path, tiny_dataset_tar, capsys):
    args = ["--dataset", "imagefolder", "--root", str(tiny_dataset_tar), "-o", str(tmp_path / "t.png")]
    for argv, message in ((["show", "nope", "0", *args], "unknown task kind 'nope'"),
                          (["show", "real", "126", *args], "real task index 126 is out of range"),
                          (["show", "table", "0", "--source", str(tmp_path / "x.csv"), *args], "no such file")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "t.png").exists()


def test_sweep_figures_show_every_task_set(tmp_path):
    rows = [{"group": g, "agreement": a, "holdout_acc_0": a - 0.1, "holdout_acc_1": a - 0.1,
             "agreement_by_epoch": [a - 0.2, a - 0.1, a]}
            for g, base in (("real", 0.8), ("random", 0.65)) for a in (base, base + 0.02, base - 0.02)]
    figures = agreement_figures(rows, tmp_path)
    assert [p.name for p in figures] == ["as_by_task_set.png", "as_by_epoch.png", "as_vs_test_acc.png"]
    for path in figures:
        assert np.asarray(Image.open(path).convert("L")).std() > 5
    by_epoch = np.asarray(Image.open(figures[1]).convert("RGB"), dtype=int)
    blue, orange = np.array([31, 119, 180]), np.array([255, 127, 14])  # matplotlib's C0, C1: one line per set
    for colour in (blue, orange):
        assert (np.abs(by_epoch - colour).sum(-1) < 30).sum() > 100
    for r in rows[:2]:
        r["agreement_by_epoch"] = None  # rows recorded before curves were kept: drawn without them
    assert agreement_figures(rows, tmp_path)[1].is_file()
