import SGDNoise

/// One row of a "Σ versus a hyperparameter" comparison (Fig. 4a, Fig. 3 left).
struct ComparisonRow {
    let exact: Double
    let continuous: Double
    let discrete: Double
    let simulation: SimulationResult?

    /// The first coordinate of a label-noise comparison, with its simulation.
    init(_ sigma: PaperFigures.LabelNoiseComparison, simulation: SimulationResult?) {
        exact = sigma.exact[0]
        continuous = sigma.continuousTime[0]
        discrete = sigma.discreteHessian[0]
        self.simulation = simulation
    }

    var sim: Double? { simulation.flatMap { $0.diverged ? nil : $0.sigma[0, 0] } }
    var stderr: Double? { simulation.flatMap { $0.diverged ? nil : $0.sigmaStandardError[0, 0] } }
    var mark: TailMark { TailMark(simulation) }
    var flagged: Bool { mark.flagged }
    var z: Double? {
        guard let sim, let stderr, stderr > 0 else { return nil }
        return (exact - sim) / stderr
    }
    func error(_ value: Double) -> Double? { sim.flatMap { relativeError(value, $0) } }

    /// Table cells after the leading hyperparameter columns.
    var cells: [String] {
        [simulated(sim, mark), stderr.map { num($0, 2) } ?? "—",
         num(exact), percent(error(exact)), z.map { cformat("%+.1f", $0) } ?? "—",
         num(continuous), percent(error(continuous)), num(discrete), percent(error(discrete))]
    }

    static let headers = ["Σ simulated", "± se", "Σ exact", "err", "z", "cont.-time", "err", "disc.-Hessian", "err"]

    /// Frame cells after the leading hyperparameter columns.
    var frameCells: [Cell] {
        [.number(sim), .number(stderr), .number(exact), .number(error(exact)), .number(z),
         .number(continuous), .number(error(continuous)), .number(discrete), .number(error(discrete)),
         .number(simulation.map { $0.tailIndex }), .flag(flagged), .flag(simulation?.diverged ?? false)]
    }

    static let frameColumns = [
        "sigma_sim", "sigma_sim_stderr", "sigma_exact", "rel_err_exact", "z_exact", "sigma_continuous_time",
        "rel_err_continuous_time", "sigma_discrete_hessian", "rel_err_discrete_hessian", "tail_index_hill",
        "tail_unreliable", "diverged",
    ]
}

let errorLegend = """
      err = (value − simulation)/simulation;  z = (exact − simulation)/se.
      † the simulator flags a heavy tail (Hill index ≤ 4): the se is not trustworthy there;
      ‡ Hill index ≤ 2.5: the variance barely exists and a sample variance typically undershoots.
    """

// MARK: - Figure 4a

/// Fig. 4a: Σ versus λ for 1-d label noise (a = 1, S = 10, σ² = 1) up to λ*.
func figure4a(_ context: RunContext) throws -> FigureResult {
    printHeading("Fig. 4a — Σ versus the learning rate: 1-d linear regression with label noise, a = 1, S = 10, σ² = 1")
    let figure = try PaperFigures.SigmaVersusLearningRate(simulation: context.simulation("fig4a"))
    let critical = figure.criticalLearningRate
    print("  critical learning rate λ* = \(num(critical, 6)) (the root of λa/(2 − (1 + 1/S)λa) = S)")
    print("  \(context.simulationSummary); points with λ > 0.9 λ* are theory only")
    print("")
    var table = TextTable(["λ", "λ/λ*"] + ComparisonRow.headers + ["κ exact"])
    var frame = Frame(["lr", "lr_over_critical"] + ComparisonRow.frameColumns + ["tail_index_kesten"])
    for point in figure.points {
        let lr = point.learningRate
        let row = ComparisonRow(point.sigma, simulation: point.simulation)
        table.add([fixed(lr, 2), fixed(lr / critical, 3)] + row.cells + [num(point.tailIndexKesten, 3)])
        frame.add([.number(lr), .number(lr / critical)] + row.frameCells + [.number(point.tailIndexKesten)])
    }
    print(table.render())
    print("")
    print(errorLegend)
    print("  κ exact: the exact tail index of the stationary law (moments of order ≥ κ diverge; Kesten, docs/theory.md §6).")
    print("  The approximations miss the divergence at λ*: continuous time Σ = λσ²/(2S) is linear in λ, the")
    print("  discrete-time Hessian Σ = λσ²/(S(2 − λa)) diverges only at λ = 2/a.")

    var curve = Frame(["lr", "lr_over_critical", "sigma_exact", "sigma_continuous_time", "sigma_discrete_hessian"])
    for c in figure.curve {
        curve.add([.number(c.learningRate), .number(c.learningRate / critical), .number(c.sigma.exact[0]),
                   .number(c.sigma.continuousTime[0]), .number(c.sigma.discreteHessian[0])])
    }
    return FigureResult(
        name: "fig4a", title: "Sigma versus the learning rate, 1-d label noise",
        parameters: [("a", .number(figure.a)), ("batch_size", .number(Double(figure.batchSize))),
                     ("noise_var", .number(figure.noiseVariance))],
        summary: [("critical_learning_rate", .number(critical)),
                  ("simulated_points", .number(Double(figure.points.filter { $0.simulation != nil }.count)))],
        frames: [("fig4a", frame), ("fig4a_curve", curve)])
}

// MARK: - Figures 4b and 4c

/// Fig. 4b (S = 50) and 4c (S = 10): the 2-d stationary fluctuation with Hessian eigenvalues 1 and
/// 0.5 at λ = 1.5, exact against the approximations and simulation; Fig. 4c adds a run at λ = 1.0.
func figure4Ellipse(_ context: RunContext, name: String) throws -> FigureResult {
    let simulation = context.simulation(name)
    let figure = name == "fig4b"
        ? try PaperFigures.StationaryEllipses.paperFigure4b(simulation: simulation)
        : try PaperFigures.StationaryEllipses.paperFigure4c(simulation: simulation)
    let s = figure.batchSize, critical = figure.criticalLearningRate
    printHeading("Fig. \(name == "fig4b" ? "4b" : "4c") — the shape of Σ in 2-d: Hessian eigenvalues 1 and 0.5, S = \(s), σ² = 1")
    print("  critical learning rate λ*(S = \(s)) = \(num(critical, 6)): λ = 1.5 is "
        + (1.5 < critical ? "stable (λ/λ* = \(fixed(1.5 / critical, 3)))" : "UNSTABLE"))
    print("  \(context.simulationSummary)")

    var frame = Frame(["lr", "batch_size", "quantity", "sim", "sim_stderr", "exact", "rel_err_exact", "z_exact",
                       "continuous_time", "rel_err_continuous_time", "discrete_hessian", "rel_err_discrete_hessian",
                       "tail_index_hill", "tail_unreliable"])
    var summary: [(String, JSON)] = [("critical_learning_rate", .number(critical))]
    for c in figure.cases {
        let result = c.simulation
        print("")
        print("  λ = \(fixed(c.learningRate, 2)) (λ/λ* = \(fixed(c.learningRate / critical, 3))): simulator's Hill tail index "
            + "\(num(result.tailIndex, 3))" + (TailMark(result).flagged ? " ≤ 4 — heavy tail, the sample covariance converges slowly" : ""))
        print(ellipseTable(c, batchSize: s, frame: &frame).render())
        let e = c.sigma.exact, sim = result.diverged ? nil : result.sigma
        summary.append(("lr_\(fixed(c.learningRate, 2))", .object([
            ("sigma_exact", .numbers(e)), ("sigma_continuous_time", .numbers(c.sigma.continuousTime)),
            ("sigma_discrete_hessian", .numbers(c.sigma.discreteHessian)),
            ("sigma_sim", sim.map { .array([.numbers([$0[0, 0], $0[0, 1]]), .numbers([$0[1, 0], $0[1, 1]])]) } ?? .null),
            ("tail_index_hill", .optional(result.tailIndex)), ("tail_unreliable", .bool(result.tailUnreliable)),
        ])))
    }
    print("")
    print(errorLegend)
    print("  Continuous time predicts an isotropic Σ ∝ I (shape 1); the discrete-time Hessian approximation gets the")
    print("  elongation but not the size; the exact Σ is larger along the sharp direction (Thm 2).")
    if name == "fig4c" {
        print("  At S = 10, λ = 1.5 lies close to λ*: the law is heavy-tailed and the sample covariance is noisy;")
        print("  λ = 1.0 checks the theory well inside the stable region.")
    }
    return FigureResult(
        name: name, title: "2-d stationary fluctuation, Hessian eigenvalues 1 and 0.5, S = \(s)",
        parameters: [("spectrum", .numbers(figure.spectrum)), ("batch_size", .number(Double(s))),
                     ("noise_var", .number(figure.noiseVariance)), ("learning_rates", .numbers(figure.cases.map(\.learningRate)))],
        summary: summary, frames: [(name, frame)])
}

/// The table of one learning rate of Fig. 4b/4c (Σ₁₁, Σ₂₂, Σ₁₂, the trace and the aspect ratio),
/// whose rows are also added to `frame`.
private func ellipseTable(_ c: PaperFigures.StationaryEllipses.Case, batchSize s: Int, frame: inout Frame) -> TextTable {
    let result = c.simulation, lr = c.learningRate
    var table = TextTable(["quantity", "simulated", "± se", "exact", "err", "z", "cont.-time", "err",
                           "disc.-Hessian", "err"])
    let e = c.sigma.exact, cont = c.sigma.continuousTime, disc = c.sigma.discreteHessian
    let sim = result.diverged ? nil : result.sigma
    let se = result.diverged ? nil : result.sigmaStandardError
    func add(_ label: String, _ key: String, sim x: Double?, se dx: Double?, exact: Double, cont: Double, disc: Double,
             relative: Bool = true) {
        let err = { (v: Double) -> Double? in relative ? x.flatMap { relativeError(v, $0) } : nil }
        var z: Double? = nil
        if let x, let dx, dx > 0 { z = (exact - x) / dx }
        table.add([label, simulated(x, TailMark(result)), dx.map { num($0, 2) } ?? "—", num(exact),
                   percent(err(exact)), z.map { cformat("%+.1f", $0) } ?? "—", num(cont), percent(err(cont)),
                   num(disc), percent(err(disc))])
        frame.add([.number(lr), .integer(s), .text(key), .number(x), .number(dx), .number(exact), .number(err(exact)),
                   .number(z), .number(cont), .number(err(cont)), .number(disc), .number(err(disc)),
                   .number(result.tailIndex), .flag(TailMark(result).flagged)])
    }
    let s11 = sim?[0, 0], s22 = sim?[1, 1], s12 = sim?[0, 1]
    let e11 = se?[0, 0], e22 = se?[1, 1], e12 = se?[0, 1]
    add("Σ₁₁ (a = 1)", "sigma_11", sim: s11, se: e11, exact: e[0], cont: cont[0], disc: disc[0])
    add("Σ₂₂ (a = 0.5)", "sigma_22", sim: s22, se: e22, exact: e[1], cont: cont[1], disc: disc[1])
    add("Σ₁₂", "sigma_12", sim: s12, se: e12, exact: 0, cont: 0, disc: 0, relative: false)
    var traceSim: Double? = nil, traceSe: Double? = nil, ratio: Double? = nil, ratioSe: Double? = nil
    if let s11, let s22 { traceSim = s11 + s22 }
    if let e11, let e22 { traceSe = (e11 * e11 + e22 * e22).squareRoot() }
    add("Tr Σ (size)", "trace", sim: traceSim, se: traceSe, exact: e[0] + e[1], cont: cont[0] + cont[1], disc: disc[0] + disc[1])
    if let s11, let s22, let e11, let e22, s22 > 0 {
        ratio = s11 / s22
        ratioSe = s11 / s22 * ((e11 / s11) * (e11 / s11) + (e22 / s22) * (e22 / s22)).squareRoot()
    }
    add("Σ₁₁/Σ₂₂ (shape)", "aspect_ratio", sim: ratio, se: ratioSe, exact: e[0] / e[1], cont: cont[0] / cont[1],
        disc: disc[0] / disc[1])
    return table
}
