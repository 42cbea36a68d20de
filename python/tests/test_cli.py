"""The command-line tool sgdnoise-cli: every subcommand, its JSON schemas, files and exit codes.

Runs the built binary (.build/release/sgdnoise-cli, or the path in SGDNOISE_CLI); skipped when it
is not built. Expected numbers come from closed forms of the theory, not from the library.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(os.environ.get("SGDNOISE_CLI", ROOT / ".build" / "release" / "sgdnoise-cli"))

pytestmark = pytest.mark.skipif(not CLI.exists(), reason=f"{CLI} is not built (make build-cli)")


def run(*args, timeout=120):
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def ok(*args):
    r = run(*args)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r


def assert_one_line_error(r, code):
    assert r.returncode == code, f"expected exit {code}, got {r.returncode}: {r.stderr!r}"
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {r.stderr!r}"
    assert lines[0].startswith("sgdnoise-cli: error: ")
    assert "Traceback" not in r.stderr and "Fatal error" not in r.stderr
    return lines[0]


def label_noise_1d(a, var, lr, s):
    """Σ of 1-d label noise [Thm 2] in closed form."""
    g = 2 - (1 + 1 / s) * lr * a
    t = lr * a / g
    kappa = t / (1 - t / s)
    return var / s * (1 + kappa / s) * lr / g, kappa


def critical_1d(a, s):
    """λ* of 1-d label noise: λa/(2 − (1 + 1/S)λa) = S  ⇔  λ = 2S/(a(S + 2))."""
    return 2 * s / (a * (s + 2))


# ---------------------------------------------------------------------------------------------
# Root

def test_help_and_version():
    r = ok("--help")
    for word in ("reproduce", "predict", "stability", "Exit codes"):
        assert word in r.stdout
    import sgdnoise

    assert ok("--version").stdout.strip() == sgdnoise.__version__
    for sub in ("reproduce", "predict", "stability"):
        assert "USAGE" in ok(sub, "--help").stdout


def test_predict_help_documents_the_json_schema():
    text = ok("predict", "--help").stdout
    for key in ("layout", "sigma", "noise", "trace_sigma", "critical_learning_rate", "baselines", "tail_index"):
        assert key in text


@pytest.mark.parametrize("args", [
    ("--bogus",),
    ("frobnicate",),
    ("predict", "--bogus"),
    ("predict", "--model", "nope", "--spectrum", "1", "--lr", "1", "--batch-size", "2"),
    ("predict", "--model", "label-noise", "--spectrum", "1", "--lr", "1"),
    ("predict", "--model", "label-noise", "--spectrum", "1,x", "--lr", "1", "--batch-size", "2"),
    ("predict", "--model", "label-noise", "--lr", "1", "--batch-size", "2"),
    ("predict", "--model", "label-noise", "--spectrum", "1", "--lr", "1", "--batch-size", "2", "--alpha", "2"),
    ("predict", "--model", "l2-regularized", "--spectrum", "1", "--lr", "1", "--batch-size", "2"),
    ("predict", "--model", "label-noise", "--spectrum", "1", "--matrix", "x.json", "--lr", "1", "--batch-size", "2"),
    ("stability",),
    ("stability", "--spectrum", "1", "--batch-sizes", "1.5,2"),
    ("stability", "--spectrum", "1", "--momenta"),
    ("stability", "--width-scaling", "--dims", "-3"),
    ("reproduce",),
    ("reproduce", "fig5"),
    ("reproduce", "fig4a", "--steps", "10"),
    ("reproduce", "fig4a", "--chains", "0"),
    ("reproduce", "fig4a", "--steps", "-5"),
    ("predict", "--model", "label-noise", "--spectrum", "1", "--lr", "0.5", "--batch-size", "2.5"),
])
def test_usage_errors_are_one_line_with_exit_64(args):
    assert_one_line_error(run(*args), 64)


def test_invalid_choice_lists_the_choices():
    line = assert_one_line_error(run("reproduce", "fig5"), 64)
    assert "fig4a" in line and "all" in line


# ---------------------------------------------------------------------------------------------
# predict

PREDICTION_KEYS = {"model", "reference", "dimension", "layout", "inputs", "sigma", "noise", "mean", "trace_sigma",
                   "train_loss", "test_loss", "kappa", "critical_learning_rate", "lr_over_critical",
                   "coupling_trace", "flat_direction_noise", "baselines", "tail_index"}
INPUT_KEYS = {"lr", "batch_size", "momentum", "noise_var", "u", "weight_decay", "input_noise", "alpha"}


def predict_json(*args):
    out = json.loads(ok("predict", *args, "--json").stdout)
    assert set(out) == PREDICTION_KEYS
    assert set(out["inputs"]) == INPUT_KEYS
    return out


def test_predict_label_noise_matches_theorem_2():
    out = predict_json("--model", "label-noise", "--spectrum", "1", "--lr", "0.5", "--batch-size", "10",
                       "--noise-var", "2")
    sigma, kappa = label_noise_1d(1.0, 2.0, 0.5, 10)
    assert out["layout"] == "diagonal" and out["dimension"] == 1
    assert math.isclose(out["sigma"][0], sigma, rel_tol=1e-12)
    assert math.isclose(out["kappa"], kappa, rel_tol=1e-12)
    assert math.isclose(out["critical_learning_rate"], critical_1d(1, 10), rel_tol=1e-12)
    assert math.isclose(out["test_loss"], 0.5 * sigma, rel_tol=1e-12)
    assert math.isclose(out["train_loss"], 0.5 * (sigma + 2.0), rel_tol=1e-12)
    base = out["baselines"]
    assert math.isclose(base["continuous_time"]["trace_sigma"], 0.5 * 2 / (2 * 10), rel_tol=1e-12)
    assert math.isclose(base["discrete_hessian"]["trace_sigma"], 0.5 * 2 / (10 * (2 - 0.5)), rel_tol=1e-12)
    assert set(out["tail_index"]) == {"kesten", "paper", "continuous_time"}
    assert math.isclose(out["tail_index"]["paper"], 2 * 10 / 0.5 - 10, rel_tol=1e-12)


def test_predict_text_summary():
    r = ok("predict", "--model", "label-noise", "--spectrum", "1,0.5", "--lr", "1.5", "--batch-size", "10")
    assert "critical learning rate" in r.stdout and "Tr Σ" in r.stdout and "continuous time" in r.stdout
    assert r.stderr == ""


def test_predict_dense_matrix_file(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([[1.0, 0.3], [0.3, 0.5]]))
    out = predict_json("--model", "label-noise", "--matrix", path, "--lr", "0.5", "--batch-size", "8",
                       "--momentum", "0.3")
    assert out["layout"] == "dense"
    assert len(out["sigma"]) == 2 and len(out["sigma"][0]) == 2
    assert math.isclose(out["sigma"][0][1], out["sigma"][1][0], rel_tol=1e-12)
    # {"matrix": ...} is accepted too.
    path.write_text(json.dumps({"matrix": [[1.0, 0.3], [0.3, 0.5]]}))
    assert predict_json("--model", "label-noise", "--matrix", path, "--lr", "0.5", "--batch-size", "8",
                        "--momentum", "0.3")["sigma"] == out["sigma"]


@pytest.mark.parametrize("args, model", [
    (("--model", "input-noise", "--spectrum", "1,0.5", "--input-noise", "0.1", "--lr", "0.5", "--batch-size", "4"),
     "input-noise"),
    (("--model", "l2-regularized", "--spectrum", "1", "--weight-decay", "-0.17", "--lr", "1.8", "--batch-size", "10"), "l2-regularized"),
    (("--model", "high-dimensional", "--spectrum", "1,0.5", "--alpha", "2", "--lr", "0.5", "--batch-size", "4"),
     "high-dimensional"),
    (("--model", "damped-newton", "--spectrum", "1,0.5", "--lr", "0.5", "--batch-size", "10"), "damped-newton"),
    (("--model", "natural-gradient", "--spectrum", "1,0.5", "--lr", "0.5", "--batch-size", "10"), "natural-gradient"),
])
def test_predict_every_model(args, model):
    out = predict_json(*args)
    assert out["model"] == model
    assert all(math.isfinite(x) for x in out["sigma"])
    assert out["trace_sigma"] > 0


def test_predict_l2_with_a_negative_weight_decay():
    # No label noise: w* = Ku... L_test = ½a(γu/(a+γ))² + ½aΣ, Σ from Thm 4 (here only checked > bias).
    out = predict_json("--model", "l2-regularized", "--spectrum", "1", "--weight-decay", "-0.17", "--lr", "1.8",
                       "--batch-size", "10")
    assert math.isclose(out["mean"][0], 1 / (1 - 0.17), rel_tol=1e-12)
    bias = 0.5 * (0.17 / (1 - 0.17)) ** 2
    assert math.isclose(out["test_loss"], bias + 0.5 * out["sigma"][0], rel_tol=1e-12)
    assert out["inputs"]["weight_decay"] == -0.17 and out["inputs"]["u"] == [1]


def test_predict_damped_newton_closed_form():
    # Σ = λσ²/(gS − λD) A⁻¹, g = 2 − (1 + 1/S)λ.
    out = predict_json("--model", "damped-newton", "--spectrum", "1,0.5", "--lr", "0.5", "--batch-size", "10")
    g = 2 - 1.1 * 0.5
    c = 0.5 / (g * 10 - 0.5 * 2)
    assert math.isclose(out["sigma"][0], c / 1.0, rel_tol=1e-12)
    assert math.isclose(out["sigma"][1], c / 0.5, rel_tol=1e-12)
    assert math.isclose(out["critical_learning_rate"], 20 / 13, rel_tol=1e-12)  # 10(2 − 1.1λ) = 2λ


def test_predict_spec_file_and_override(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"model": "label-noise", "spectrum": [1.0], "lr": 0.5, "batch_size": 10,
                                "noise_var": 2}))
    out = predict_json("--spec", spec)
    assert math.isclose(out["sigma"][0], label_noise_1d(1, 2, 0.5, 10)[0], rel_tol=1e-12)
    out = predict_json("--spec", spec, "--lr", "0.25")
    assert math.isclose(out["sigma"][0], label_noise_1d(1, 2, 0.25, 10)[0], rel_tol=1e-12)


def test_predict_unstable_exit_2_names_the_critical_learning_rate():
    r = run("predict", "--model", "label-noise", "--spectrum", "1", "--lr", "1.7", "--batch-size", "10")
    line = assert_one_line_error(r, 2)
    assert "critical learning rate" in line and "1.666666" in line
    assert r.stdout == ""


def test_predict_input_errors(tmp_path):
    # 66: a file that cannot be read; 64: one that is read but malformed (as on the command line).
    assert_one_line_error(run("predict", "--model", "label-noise", "--matrix", tmp_path / "missing.json",
                              "--lr", "1", "--batch-size", "2"), 66)
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": "l2-regularized",')
    assert_one_line_error(run("predict", "--spec", bad), 64)
    bad.write_text('{"model": "l2-regularized", "batch_sze": 3}')
    assert "batch_sze" in assert_one_line_error(run("predict", "--spec", bad), 64)
    bad.write_text('[[1, "x"], [0, 1]]')
    assert_one_line_error(run("predict", "--model", "label-noise", "--matrix", bad, "--lr", "1", "--batch-size", "2"),
                          64)
    asym = tmp_path / "asym.json"
    asym.write_text("[[1, 0.3], [0.2, 1]]")
    assert "symmetric" in assert_one_line_error(
        run("predict", "--model", "label-noise", "--matrix", asym, "--lr", "0.5", "--batch-size", "2"), 1)
    assert_one_line_error(run("predict", "--model", "label-noise", "--spectrum", "1", "--lr", "0.5",
                              "--batch-size", "0"), 1)
    assert_one_line_error(run("predict", "--model", "label-noise", "--spectrum", "1", "--lr", "0.5",
                              "--batch-size", "2", "--momentum", "1.5"), 1)


BASE = {"model": "label-noise", "spectrum": [1.0], "lr": 0.5, "batch_size": 4}


@pytest.mark.parametrize("key, flag, value, code, named", [
    ("batch_size", "--batch-size", -4, 1, True),
    ("batch_size", "--batch-size", 0, 1, True),
    ("lr", "--lr", -1, 1, True),
    ("momentum", "--momentum", -0.5, 1, True),
    ("momentum", "--momentum", 1.5, 1, True),
    ("noise_var", "--noise-var", -1, 1, True),
    ("spectrum", "--spectrum", -1, 1, False),
    ("batch_size", "--batch-size", 2.5, 64, False),
    ("momentum", "--momentum", "abc", 64, False),
])
def test_predict_same_mistake_same_exit_code_by_either_route(tmp_path, key, flag, value, code, named):
    """Negative numbers parse as values everywhere; flags and --spec give the same code, and the
    library's message names the value as the user wrote it (the option, or the file's key)."""
    options = {"--spectrum": "1", "--lr": "0.5", "--batch-size": "4", flag: str(value)}
    by_flag = assert_one_line_error(run("predict", "--model", "label-noise", *[x for kv in options.items() for x in kv]),
                                    code)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**BASE, key: [value] if key == "spectrum" else value}))
    by_spec = assert_one_line_error(run("predict", "--spec", spec), code)
    assert "Missing value" not in by_flag
    if named:
        assert flag in by_flag and f"spec.json: {key}" in by_spec
    if key == "spectrum":
        assert "positive semi-definite" in by_flag and "positive semi-definite" in by_spec


def test_stability_values_the_library_refuses_exit_1():
    assert "--batch-sizes" in assert_one_line_error(run("stability", "--spectrum", "1", "--batch-sizes", "-4,2"), 1)
    assert "--batch-sizes" in assert_one_line_error(run("stability", "--spectrum", "1", "--batch-sizes", "0,2"), 1)
    assert "--momenta" in assert_one_line_error(run("stability", "--spectrum", "1", "--momenta", "-0.5"), 1)


def test_help_documents_the_exit_codes():
    text = ok("--help").stdout
    for code in ("64", "66", "--spec", "Negative numbers"):
        assert code in text


# ---------------------------------------------------------------------------------------------
# stability

def test_stability_table_and_json():
    r = ok("stability", "--spectrum", "1", "--batch-sizes", "1,2,4", "--momenta", "0,0.5")
    assert "λ* (μ = 0)" in r.stdout and "GD edge" in r.stdout
    out = json.loads(ok("stability", "--spectrum", "1", "--batch-sizes", "1,2,4", "--momenta", "0,0.5",
                        "--json").stdout)
    assert set(out) == {"model", "dimension", "a_max", "momenta", "batch_sizes", "gd_edge", "critical_learning_rate"}
    assert out["batch_sizes"] == [1, 2, 4] and out["momenta"] == [0, 0.5]
    assert len(out["critical_learning_rate"]) == 3 and all(len(row) == 2 for row in out["critical_learning_rate"])
    for s, row in zip((1, 2, 4), out["critical_learning_rate"]):
        assert math.isclose(row[0], critical_1d(1, s), rel_tol=1e-12)
        assert row[1] < out["gd_edge"][1]
    assert out["gd_edge"] == [2, 3]


def test_stability_width_scaling_matches_2S_over_D():
    out = json.loads(ok("stability", "--width-scaling", "--batch-sizes", "8", "--dims", "1,10,1000",
                        "--json").stdout)
    assert set(out) == {"model", "a_mean", "momentum", "batch_sizes", "rows"}
    for row in out["rows"]:
        d = row["dimension"]
        assert set(row) == {"dimension", "critical_learning_rate", "reference_2S_over_aD", "ratio"}
        assert math.isclose(row["critical_learning_rate"][0], 2 * 8 / (d + 8 - 1), rel_tol=1e-10)
    assert "2S/(āD)" in ok("stability", "--width-scaling").stdout


# ---------------------------------------------------------------------------------------------
# reproduce

FAST = ("--quick", "--steps", "20000", "--chains", "2", "--quiet")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_reproduce_fig4a_files_and_theory(tmp_path):
    r = ok("reproduce", "fig4a", "--out", tmp_path, "--json", *FAST)
    assert "Fig. 4a" in r.stdout and "λ*" in r.stdout
    rows = read_csv(tmp_path / "fig4a.csv")
    assert len(rows) == 16
    for row in rows:
        lr = float(row["lr"])
        assert math.isclose(float(row["sigma_exact"]), label_noise_1d(1, 1, lr, 10)[0], rel_tol=1e-12)
        assert math.isclose(float(row["sigma_continuous_time"]), lr / 20, rel_tol=1e-12)
        assert math.isclose(float(row["sigma_discrete_hessian"]), lr / (10 * (2 - lr)), rel_tol=1e-12)
        if lr <= 0.9 * critical_1d(1, 10):
            assert float(row["sigma_sim"]) > 0 and float(row["sigma_sim_stderr"]) > 0
        else:
            assert row["sigma_sim"] == ""
    doc = json.loads((tmp_path / "fig4a.json").read_text())
    assert set(doc) == {"figure", "title", "parameters", "simulation", "summary", "tables"}
    assert set(doc["tables"]) == {"fig4a", "fig4a_curve"}
    assert math.isclose(doc["summary"]["critical_learning_rate"], 5 / 3, rel_tol=1e-12)
    assert doc["simulation"]["steps_per_chain"] == 20000 and doc["simulation"]["chains"] == 2


def test_reproduce_all_writes_every_file(tmp_path):
    r = ok("reproduce", "all", "--out", tmp_path / "nested" / "out", "--json", *FAST)
    out = tmp_path / "nested" / "out"
    expected = {"fig4a.csv", "fig4a_curve.csv", "fig4a.json", "fig4b.csv", "fig4b.json", "fig4c.csv", "fig4c.json",
                "fig3_batch.csv", "fig3_batch_curve.csv", "fig3_weight_decay.csv", "fig3_weight_decay_curve.csv",
                "fig3.json", "fig2.csv", "fig2_survival.csv", "fig2_hill.csv", "fig2.json"}
    assert expected <= {p.name for p in out.iterdir()}
    for title in ("Fig. 4a", "Fig. 4b", "Fig. 4c", "Fig. 3 (left)", "Fig. 3 (right)", "Fig. 2"):
        assert title in r.stdout
    # Fig. 4b/4c: both paper settings are stable and reported so.
    assert "λ = 1.5 is stable" in r.stdout
    # Fig. 3 right: γ* = 0 in the paper's case, negative past λ*(γ = 0) at S = 10.
    summary = json.loads((out / "fig3.json").read_text())["summary"]["weight_decay"]
    assert summary["paper"]["optimal_weight_decay"] == 0
    assert summary["large-lr"]["optimal_weight_decay"] < 0
    assert summary["large-lr-s1"]["optimal_weight_decay"] > 0
    # Fig. 2: the indices of the theory in closed form.
    for row in read_csv(out / "fig2.csv"):
        s = int(row["batch_size"])
        assert math.isclose(float(row["paper"]), 2 * s - s, rel_tol=1e-12)
        assert math.isclose(float(row["continuous_time"]), 2 * s + 1, rel_tol=1e-12)
        assert 2 < float(row["kesten"]) < float(row["paper"])
    assert r.stderr == ""  # --quiet: no progress bar


def test_reproduce_is_deterministic_for_a_seed(tmp_path):
    ok("reproduce", "fig4b", "--out", tmp_path / "a", "--seed", "7", *FAST)
    ok("reproduce", "fig4b", "--out", tmp_path / "b", "--seed", "7", *FAST)
    assert (tmp_path / "a" / "fig4b.csv").read_text() == (tmp_path / "b" / "fig4b.csv").read_text()


def test_reproduce_progress_bar_on_request(tmp_path):
    r = subprocess.run([str(CLI), "reproduce", "fig4b", "--out", str(tmp_path), "--quick", "--steps", "400000",
                        "--chains", "2", "--progress"], capture_output=True, timeout=120)
    assert r.returncode == 0
    assert b"\r" in r.stderr and b"steps/s" in r.stderr  # redrawn in place with carriage returns


def test_reproduce_unwritable_output_exit_73(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_one_line_error(run("reproduce", "fig4b", "--out", blocker / "sub", *FAST), 73)


# ---------------------------------------------------------------------------------------------
# curve

def label_noise_curve_1d(a, var, lr, s, m0):
    """E[w_t²] of 1-d label noise under per-update λ_t, S_t, from E[w_0²] = m0 (docs/theory.md §9):
    M ← (1 − λa)²M + λ²(2a²M + σ²a)/S, the second moment written out by hand."""
    out = [m0]
    for l, b in zip(lr, s):
        m = out[-1]
        out.append((1 - l * a) ** 2 * m + l * l * (2 * a * a * m + var * a) / b)
    return out


def parse_csv(text):
    rows = list(csv.DictReader(text.splitlines()))
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def test_curve_milestones_and_batch_ramp_match_the_hand_recursion():
    a, var, lr0, s0, w0 = 0.8, 0.5, 0.6, 4, 0.3
    r = ok("curve", "--model", "label-noise", "--spectrum", a, "--noise-var", var, "--lr", lr0, "--batch-size", s0,
           "--steps", 30, "--decay", "milestones", "--milestones", "10,20", "--factor", 0.1,
           "--batch-milestones", "15", "--batch-factor", 3, "--w0", w0, "--record", ",".join(map(str, range(31))))
    table = parse_csv(r.stdout)
    updates = range(1, 31)
    lr = [lr0 * 0.1 ** sum(m < t for m in (10, 20)) for t in updates]
    s = [s0 * 3 ** (15 < t) for t in updates]
    m = label_noise_curve_1d(a, var, lr, s, w0 * w0)
    assert table["step"] == list(range(31))
    assert table["lr"] == pytest.approx([lr[0]] + lr, rel=1e-15)
    assert table["batch_size"] == [s[0]] + s
    # Σ_t = M_t − (E w_t)², with E w_t = Π(1 − λa) w0.
    mean = [w0]
    for l in lr:
        mean.append((1 - l * a) * mean[-1])
    assert table["trace_sigma"] == pytest.approx([mt - mu * mu for mt, mu in zip(m, mean)], rel=1e-12, abs=1e-16)
    assert table["test_loss"] == pytest.approx([0.5 * a * mt for mt in m], rel=1e-12)
    assert table["train_loss"] == pytest.approx([0.5 * (a * mt + var) for mt in m], rel=1e-12)


def test_curve_json_spec_file_and_out(tmp_path):
    spec = tmp_path / "curve.json"
    spec.write_text(json.dumps({"model": "label-noise", "spectrum": [1], "lr": 1.5, "batch_size": 10,
                                "steps": 300, "decay": "step", "factor": 0.1, "every": 100, "record": [0, 100, 300]}))
    out = tmp_path / "curve.json.out"
    ok("curve", "--spec", spec, "--json", "--out", out)
    doc = json.loads(out.read_text())
    assert set(doc) == {"model", "dimension", "steps", "lr", "batch_size", "momentum", "train_loss", "test_loss",
                        "trace_sigma", "unstable_from", "relaxation"}
    assert doc["steps"] == [0, 100, 300] and doc["dimension"] == 1 and doc["unstable_from"] is None
    assert doc["lr"] == pytest.approx([1.5, 1.5, 0.015])
    assert set(doc["relaxation"]) == {"mode_times", "moment_time", "mean_time", "stationary_train_loss",
                                      "stationary_test_loss", "settled_at", "tolerance"}
    # The last segment (λ = 0.015, S = 10) settles to the stationary loss of Theorem 2.
    stationary = 0.5 * label_noise_1d(1, 1, 0.015, 10)[0] + 0.5
    assert doc["relaxation"]["stationary_train_loss"] == pytest.approx(stationary, rel=1e-12)
    # An option overrides the file.
    csv_text = ok("curve", "--spec", spec, "--steps", 50, "--record", "0,25,50").stdout
    assert parse_csv(csv_text)["step"][-1] == 50


def test_curve_unstable_schedule_is_reported_not_refused():
    # λ* of 1-d label noise at S = 4 is 2S/(a(S + 2)) = 4/3: a warm-up that ends at 1.4 crosses it.
    r = ok("curve", "--model", "label-noise", "--spectrum", 1, "--lr", 1.4, "--batch-size", 4, "--steps", 40,
           "--warmup", 20, "--json")
    doc = json.loads(r.stdout)
    warm = [1.4 * min(1, t / 20) for t in range(1, 41)]
    first = next(t for t, l in zip(range(1, 41), warm) if l > critical_1d(1, 4))
    assert doc["unstable_from"] == first


@pytest.mark.parametrize("args,code,named", [
    (("--steps", 10), 64, "--model"),
    (("--model", "label-noise", "--spectrum", 1, "--lr", 0.1, "--batch-size", 2), 64, "--steps"),
    (("--model", "label-noise", "--spectrum", "1,2", "--lr", "0.1,0.2", "--batch-size", 2, "--steps", 5), 64, "--lr"),
    (("--model", "label-noise", "--spectrum", 1, "--lr", 0.1, "--batch-size", 2, "--steps", 5, "--decay", "cosine"), 64,
     "--final"),
    (("--model", "label-noise", "--spectrum", 1, "--lr", 0.1, "--batch-size", 2, "--steps", 5, "--batch-milestones", 2),
     64, "--batch-factor"),
    (("--model", "damped-newton", "--spectrum", 1, "--lr", 0.1, "--batch-size", 2, "--steps", 5), 1, "damped"),
    (("--model", "label-noise", "--spectrum", 1, "--lr", 0.1, "--batch-size", 2, "--steps", 0), 1, "steps"),
])
def test_curve_errors(args, code, named):
    line = assert_one_line_error(run("curve", *args), code)
    assert named.lower() in line.lower(), line
