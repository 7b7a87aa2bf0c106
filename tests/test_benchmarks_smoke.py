"""A small run of the credit benchmark script, so that benchmarks/ cannot rot unnoticed: German credit,
2 x 5 folds, two buyerscore models and their mean, nothing written."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_credit_benchmark_quick_run(data_dir: Path) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "credit.py"), "--data-dir", str(data_dir), "--datasets",
           "german_credit", "--quick", "--no-speed", "--no-write", "--models", "buyerscore_scorecard",
           "buyerscore_gbm"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-2000:]
    rows = {m.group(1): ast.literal_eval(m.group(2))
            for m in re.finditer(r"german_credit (buyerscore_\w+): (\{.*\}) \(\d+s\)$", out, re.MULTILINE)}
    assert set(rows) == {"buyerscore_scorecard", "buyerscore_gbm"}, out[-2000:]
    for name, r in rows.items():
        assert r["folds"] == 10, name
        assert 0.75 < r["auc"]["mean"] < 0.85, (name, r["auc"])  # published results on German: 0.75-0.80
        assert 0.4 < r["statlog_cost"]["mean"] < 0.7, (name, r["statlog_cost"])
    assert "german_credit buyerscore_ensemble:" in out and p.stdout.rstrip().endswith("done")
