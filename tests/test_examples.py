"""The README's main job and the examples run end to end."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_cli_help_explains_the_commands():
    out = _run("-m", "neuralnmf", "--help")
    assert out.returncode == 0 and "demo" in out.stdout and "nnls-demo" in out.stdout


def test_demo_trains_a_hierarchy_and_writes_figures(tmp_path):
    out = _run("-m", "neuralnmf", "demo", "--epochs", "300", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    for text in ("relative error", "hierarchy:", "true parent links", "L2.T0"):
        assert text in out.stdout
    for name in ("layers.png", "hierarchy.png", "loss.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_nnls_demo_runs():
    out = _run("-m", "neuralnmf", "nnls-demo", "--steps", "5")
    assert out.returncode == 0, out.stderr
    assert "relative error" in out.stdout and "KKT residual" in out.stdout


def test_demo_rejects_unknown_command():
    out = _run("-m", "neuralnmf", "frobnicate")
    assert out.returncode != 0 and "invalid choice" in out.stderr


def test_nnls_basics_example_runs():
    out = _run(os.path.join("examples", "nnls_basics.py"))
    assert out.returncode == 0, out.stderr
    assert "batched S: (3, 8, 1000)" in out.stdout


def test_demo_explains_its_two_accuracies(tmp_path):
    out = _run("-m", "neuralnmf", "demo", "--epochs", "50", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "classes readable from the codes" in out.stdout and "topics that are the classes" in out.stdout
    assert "a class can be spread over two topics" in out.stdout


def test_nnls_basics_names_every_status_count():
    out = _run(os.path.join("examples", "nnls_basics.py"))
    line = next(l for l in out.stdout.splitlines() if l.startswith("warm start"))
    assert "by pivoting" in line and "Lawson-Hanson" in line and "iteration bound" in line


def test_real_corpus_walkthrough_runs_on_a_slice(tmp_path):
    import pytest

    from neuralnmf.datasets import find_data_file

    archive = find_data_file("20news-bydate.tar.gz")
    if archive is None:
        pytest.skip("../shared/data/20news-bydate.tar.gz absent")
    pytest.importorskip("sklearn")
    out = _run(os.path.join("examples", "real_corpus.py"), str(archive), "--per-class", "6", "--epochs", "2",
               "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr[-3000:]
    for text in ("documents of 10 newsgroups", "topic tree of the unsupervised run", "| unsupervised | 2 (5) |",
                 "| semi-supervised | 1 (10) |", "held-out accuracy"):
        assert text in out.stdout, text


def test_supervised_benchmark_runs_on_a_slice(tmp_path):
    """Issue 21's benchmark script on a small stratified slice: its tables, its JSON, and numbers it must get right
    (the ratio column recomputed from the errors beside it, accuracies better than chance)."""
    import json

    import pytest

    from neuralnmf.datasets import find_data_file

    archive = find_data_file("20news-bydate.tar.gz")
    if archive is None:
        pytest.skip("../shared/data/20news-bydate.tar.gz absent")
    pytest.importorskip("sklearn")
    out_json = tmp_path / "results.json"
    out = _run(os.path.join("examples", "supervised_benchmark.py"), "--archive", str(archive), "--max-docs", "400",
               "--ranks", "6,3", "--settings", "semi-0.5", "--epochs", "20", "--nmf-iter", "50",
               "--ssnmf-iters", "50", "--cv-folds", "3", "--out", str(out_json))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "400 train / 400 test documents" in out.stdout
    for text in ("**semi-0.5** (200 labeled training documents), ranks (6, 3)", "| Neural NMF, defaults | 6,3 |",
                 "| scikit-learn NMF + LR (C=1) | 6 |", "| SSNMF (MU, lam 1,", "| LR on tf-idf (ceiling) | — |",
                 "| method | rank | test accuracy | rel. training error | time (s) |",
                 "| level | rank | Neural NMF rel. training error | scikit-learn NMF | ratio |"):
        assert text in out.stdout, text
    res = json.loads(out_json.read_text())
    s = res["settings"]["semi-0.5"]
    assert s["labeled"] == 200 and res["train_docs"] == 400 and res["threads"] == 1
    ours = s["hierarchies"]["6,3"]
    assert len(ours["level_errors"]) == 2 and all(0.5 < e < 1.0 for e in ours["level_errors"])
    # 20 classes: the tf-idf ceiling and ours beat chance (0.05) clearly even on 200 labeled documents
    assert s["tfidf_lr"]["accuracy"] > 0.2 and ours["accuracy"] > 0.1
    for k in ("6", "3"):
        for key in ("default_C", "cv_C"):
            assert 0.0 <= s["per_rank"][k]["nmf_lr"][key]["accuracy"] <= 1.0
        assert s["per_rank"][k]["ssnmf"]["iterations"] <= 50
    line = next(l for l in out.stdout.splitlines() if l.startswith("| 0 | 6 |"))
    err, ref, ratio = (float(v) for v in line.strip("|").split("|")[2:5])
    assert abs(ratio - err / ref) < 2e-4
    assert abs(err - ours["level_errors"][0]) < 1e-4 and abs(ref - res["nmf"]["6"]["train_error"]) < 1e-4
    again = _run(os.path.join("examples", "supervised_benchmark.py"), "--tables-from", str(out_json))
    assert again.returncode == 0, again.stderr[-3000:]
    rows = [l for l in out.stdout.splitlines() if l.startswith("|")]
    assert len(rows) == 14 and [l for l in again.stdout.splitlines() if l.startswith("|")] == rows


def test_rank_selection_example_runs_on_one_small_cell(tmp_path):
    out = _run(os.path.join("examples", "rank_selection.py"), "--seeds", "1", "--configs", "8,3", "--noises", "20 dB",
               "--out", str(tmp_path / "runs.jsonl"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| (8, 3) | 20 dB | 1 | 100% | 100% / 100% |" in out.stdout
    assert (tmp_path / "runs.jsonl").read_text().count("\n") == 1


def test_topic_quality_example_runs_with_two_seeds(tmp_path):
    """examples/topic_quality.py on all of 20 Newsgroups at tiny ranks: one row per model and level, each the mean
    of its seeds with every seed's NPMI, and the same rows in --json."""
    import json

    import pytest

    from neuralnmf.datasets import find_data_file

    archive = find_data_file("20news-bydate.tar.gz")
    if archive is None:
        pytest.skip("../shared/data/20news-bydate.tar.gz absent")
    pytest.importorskip("sklearn")
    out = _run(os.path.join("examples", "topic_quality.py"), str(archive), "--ranks", "4", "2", "--epochs", "2",
               "--seeds", "2", "--json", str(tmp_path / "rows.json"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2186 words" in out.stdout
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert sorted((r["model"], r["level"], r["k"]) for r in rows) == [
        ("Neural NMF 4-2", 0, 4), ("Neural NMF 4-2", 1, 2), ("sklearn NMF", 0, 2), ("sklearn NMF", 0, 4)]
    for r in rows:
        assert len(r["npmi_per_seed"]) == 2 and abs(r["npmi"] - sum(r["npmi_per_seed"]) / 2) < 1e-12
        assert -1 <= r["npmi"] <= 1 and 0 < r["diversity"] <= 1
    tree = next(r for r in rows if r["model"].startswith("Neural") and r["level"] == 1)
    assert tree["one_child"] == 0.0  # 4 topics in 2 parents of 2 children
    assert "| Neural NMF 4-2 | 1 | 2 |" in out.stdout


def test_coherence_diagnostics_example_runs(tmp_path):
    """examples/coherence_diagnostics.py at tiny ranks: the six flat-NMF paths' table, the convergence table (two
    power-iteration counts, scored after 1 and 3 steps, scikit-learn beside), a 4-2 tree from scikit-learn's CD, and
    the pairings of a 4-2 hierarchy (3 ways to pair 4 topics), the tree's among them."""
    import pytest

    from neuralnmf.datasets import find_data_file

    archive = find_data_file("20news-bydate.tar.gz")
    if archive is None:
        pytest.skip("../shared/data/20news-bydate.tar.gz absent")
    pytest.importorskip("sklearn")
    script = os.path.join("examples", "coherence_diagnostics.py")
    out = _run(script, str(archive), "starts", "--rank", "3", "--seeds", "1")
    assert out.returncode == 0, out.stderr[-3000:]
    for path in ("ANLS from our NNDSVD", "CD (exact codes) from our NNDSVD", "CD (NNDSVD codes) from our NNDSVD",
                 "ANLS from scikit-learn's NNDSVD", "CD (exact codes) from scikit-learn's NNDSVD",
                 "CD (NNDSVD codes) from scikit-learn's NNDSVD"):
        assert f"| {path} |" in out.stdout
    out = _run(script, str(archive), "convergence", "--rank", "3", "--seeds", "2", "--power-iterations", "0", "4",
               "--steps", "1", "3", "--sklearn")
    assert out.returncode == 0, out.stderr[-3000:]
    for power in (0, 4):
        assert f"{power} power iterations: right singular vectors' mean |cos| with the exact ones" in out.stdout
        assert f"| {power} | 1 |" in out.stdout and f"| {power} | 3 |" in out.stdout
    assert "seed 1, 4 power iterations: 1 steps: error" in out.stdout and ", 3 steps: error" in out.stdout
    assert "scikit-learn NMF(init='nndsvd', max_iter=400): NPMI" in out.stdout
    out = _run(script, str(archive), "tree-cd", "--ranks", "4", "2", "--epochs", "2", "--seeds", "1")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "seed 0: NPMI per level at the start" in out.stdout and "level 1 (K = 2): NPMI at the start" in out.stdout
    out = _run(script, str(archive), "pairings", "--ranks", "4", "2", "--epochs", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "3 pairings of the 4 level-0 topics" in out.stdout and "the tree's pairing:" in out.stdout
    out = _run(script, str(archive), "pairings", "--ranks", "6", "2", "--epochs", "2")
    assert out.returncode != 0 and "the top rank must be half" in out.stderr
