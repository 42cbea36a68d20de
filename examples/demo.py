"""sgdnoise demo: reproduce the paper's figures, theory against Monte-Carlo SGD, in about a minute.

    make demo        (or: PYTHONPATH=python python3 examples/demo.py)

What a reader of Ziyin, Liu, Mori, Ueda, "Strength of Minibatch Noise in SGD" (ICLR 2022) runs
first. Step 1 runs ``sgdnoise-cli reproduce all`` (the command-line tool, built by ``make demo``
into .build/release/) which prints, for every figure, the exact theory, the continuous-time and
discrete-time-Hessian approximations and a simulation, with each one's relative error, and writes
CSV/JSON files into figures/. Without the tool the same tables come from the Python package.
Step 2 draws the figures as PNG files into figures/ with ``sgdnoise.plot`` (needs matplotlib).

Installs nothing and builds nothing: ``make demo`` does that first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import sgdnoise
except ModuleNotFoundError:  # a source checkout without PYTHONPATH
    sys.path.insert(0, str(ROOT / "python"))
    import sgdnoise

CLI = Path(os.environ.get("SGDNOISE_CLI", ROOT / ".build" / "release" / "sgdnoise-cli"))
FIGURES = ROOT / "figures"


def shown(path):
    """A path relative to the checkout when it is inside it."""
    path = Path(path).resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def banner(text):
    print("\n" + text + "\n" + "─" * len(text))


def pct(value, reference):
    """(value − reference)/reference in percent."""
    return f"{100 * (value - reference) / reference:+.1f}%" if reference else "—"


def python_tables():
    """The tables of ``reproduce all`` computed with the Python package (when the CLI is not built).

    Returns the figure data, reused for drawing so that nothing is simulated twice.
    """
    import numpy as np

    from sgdnoise import plot

    data = {}
    banner("Fig. 4a — Σ versus λ: 1-d label noise, a = 1, S = 10, σ² = 1")
    d = data["fig4a"] = plot.fig4a_data(steps=200_000, chains=4)
    print(f"  critical learning rate λ* = {d['critical_learning_rate']:.6g}")
    print(f"  {'λ':>6} {'Σ sim':>10} {'± se':>8} {'exact':>10} {'err':>7} {'cont.':>9} {'err':>7}"
          f" {'disc.H':>9} {'err':>7}")
    s = d["sim"]
    for lr, sig, se, heavy in zip(s["lr"], s["sigma"], s["stderr"], s["tail_unreliable"]):
        exact = sgdnoise.label_noise([1.0], 1.0, lr, 10).sigma[0]
        cont = sgdnoise.continuous_time([1.0], 1.0, lr, 10)[0]
        disc = sgdnoise.discrete_hessian([1.0], 1.0, lr, 10)[0]
        mark = "†" if heavy else " "
        print(f"  {lr:6.3f} {sig:10.5g}{mark}{se:8.2g} {exact:10.5g} {pct(exact, sig):>7} {cont:9.4g}"
              f" {pct(cont, sig):>7} {disc:9.4g} {pct(disc, sig):>7}")

    banner("Fig. 4b/4c — 2-d, Hessian eigenvalues 1 and 0.5, λ = 1.5: diag Σ")
    data["fig4_ellipses"] = plot.fig4_ellipses_data(steps=200_000, chains=4)
    for e in data["fig4_ellipses"]:
        print(f"  S = {e['batch_size']}: λ* = {e['critical_learning_rate']:.5g} → λ = 1.5 is "
              f"{'stable' if e['stable'] else 'UNSTABLE'}")
        if e["sim"] is not None:
            sim = np.diag(e["sim"]["sigma"])
            for name in ("exact", "continuous_time", "discrete_hessian"):
                v = np.diag(e[name])
                print(f"    {name:17} Σ₁₁ = {v[0]:.5g} ({pct(v[0], sim[0])}),  Σ₂₂ = {v[1]:.5g} ({pct(v[1], sim[1])})")
            print(f"    {'simulation':17} Σ₁₁ = {sim[0]:.5g},  Σ₂₂ = {sim[1]:.5g}"
                  + (f"   († heavy tail, Hill {e['sim']['tail_index']:.2f})" if e["sim"]["tail_unreliable"] else ""))

    banner("Fig. 3 — Σ versus S (a = 1.5, λ = 1) and L_test versus γ (a = 1, u = 1)")
    d = data["fig3_batch"] = plot.fig3_batch_data(steps=200_000, chains=4)
    print(f"  λ = 1 is stable for S ≥ {d['smallest_stable']}")
    s = d["sim"]
    for size, sig, heavy in zip(s["batch_size"], s["sigma"], s["tail_unreliable"]):
        exact = sgdnoise.label_noise([1.5], 1.0, 1.0, int(size)).sigma[0]
        print(f"    S = {int(size):4d}: Σ sim {sig:.5g}{'†' if heavy else ' '} exact {exact:.5g} ({pct(exact, sig)})")
    data["fig3_weight_decay"] = plot.fig3_weight_decay_data(steps=200_000, chains=4)
    for e in data["fig3_weight_decay"]:
        print(f"  λ = {e['lr']}, S = {e['batch_size']}: λ*(γ = 0) = {e['critical_learning_rate_gamma0']:.5g}, "
              f"γ* = {e['gamma_star']:.4g}, L_test(γ*) = {e['test_loss_star']:.4g}")

    banner("Fig. 2 — tail index at aλ = 1")
    data["fig2_tail"] = plot.fig2_tail_data()
    for e in data["fig2_tail"]:
        print(f"  S = {e['batch_size']:3d}: Hill (simulator) {e['hill_simulator']:.3g}, exact Kesten κ "
              f"{e['kesten']:.4g}, paper 2S/(aλ) − S = {e['paper']:.4g}")
    return data


def main():
    start = time.monotonic()
    print(f"sgdnoise {sgdnoise.__version__}: the paper's figures, theory against simulation")
    data = None
    if CLI.exists():
        banner(f"Step 1: {shown(CLI)} reproduce all --out figures/ --json")
        sys.stdout.flush()
        status = subprocess.run([str(CLI), "reproduce", "all", "--out", str(FIGURES), "--json"]).returncode
        if status != 0:
            print(f"sgdnoise-cli failed with exit code {status}", file=sys.stderr)
            return status
    else:
        banner("Step 1: the tables, from the Python package")
        print(f"({shown(CLI)} is not built — `make demo` builds it; using the Python equivalents)")
        data = python_tables()

    banner("Step 2: the figures, drawn with sgdnoise.plot")
    try:
        from sgdnoise import plot

        plot._pyplot()
    except ImportError as exc:
        print(f"skipped: {exc}")
        return 0
    FIGURES.mkdir(exist_ok=True)
    if data is None:  # drawn from the files the command-line tool just wrote
        paths = plot.save_all(FIGURES, data=plot.read_reproduced(FIGURES))
    else:
        import matplotlib.pyplot as plt

        paths = []
        for name, draw in (("fig4a", plot.fig4a), ("fig4_ellipses", plot.fig4_ellipses),
                           ("fig3_batch", plot.fig3_batch), ("fig3_weight_decay", plot.fig3_weight_decay),
                           ("fig2_tail", plot.fig2_tail)):
            fig = draw(data=data[name])
            path = FIGURES / f"{name}.png"
            fig.savefig(path, dpi=130, bbox_inches="tight")
            plt.close(fig)
            paths.append(path)
    for path in paths:
        print(f"  {shown(path)}  ({Path(path).stat().st_size // 1024} KiB)")
    others = sorted(p.name for p in FIGURES.iterdir() if p.suffix in (".csv", ".json"))
    if others:
        print(f"  and {len(others)} CSV/JSON files from the command-line tool: {', '.join(others)}")
    print(f"\nDone in {time.monotonic() - start:.0f} s. Figures are in {FIGURES}/.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
