"""benchmarks/train_recipe.py --dry: the recipe sweep runs end to end on a tiny random model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dry_sweep_prints_one_row_per_recipe_with_intervals() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_recipe.py"), "--dry"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    table = run.stdout[run.stdout.index("| recipe |"):]
    rows = [line for line in table.splitlines() if line.startswith("| dry-")]
    assert [r.split("|")[1].strip() for r in rows] == ["dry-a", "dry-b", "dry-full", "dry-curve"]
    assert rows[2].split("|")[4].strip() == "full"                          # no LoRA rank: every weight
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1] == "6" and int(cells[6]) >= 1                       # examples used, optimizer steps
        assert re.fullmatch(r"\d+\.\d% \[\d+\.\d%, \d+\.\d%\]", cells[9])     # score with its interval
        assert cells[11] == "3"                                               # val call items scored
    assert "val call items" in run.stdout and "load average" in run.stdout
    # the learning-curve recipe prints its exact val answers and val loss after each epoch
    curve = re.search(r"dry-curve: exact val answers per epoch \(probe of 2\): (\d+\.\d%), (\d+\.\d%); "
                      r"val loss per epoch: \d+\.\d{3}, \d+\.\d{3}", run.stdout)
    assert curve, run.stdout[-1500:]
    chosen = re.search(r"chosen on val: (dry-\S+); on (\d+) test call items: args_exact_match "
                       r"\d+\.\d% \[\d+\.\d%, \d+\.\d%\]", run.stdout)
    assert chosen and chosen[1] in ("dry-a", "dry-b", "dry-full", "dry-curve") and int(chosen[2]) >= 1


def test_unknown_recipe_is_refused_in_one_line() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_recipe.py"), "--recipes", "nope"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "unknown recipe nope" in run.stderr


def test_dry_sweep_trains_a_recipe_once_per_seed_and_can_report_each_on_test() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_recipe.py"), "--dry", "--recipes",
                          "dry-a", "--train-seeds", "0,1", "--test-every"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    table = run.stdout[run.stdout.index("| recipe |"):]
    assert [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| dry-")] == \
        ["dry-a@0", "dry-a@1"]
    tested = re.findall(r"(dry-a@\d) on \d+ test call items \(reported, not chosen on\): args_exact_match "
                        r"\d+\.\d% \[", run.stdout)
    assert tested == ["dry-a@0", "dry-a@1"]
