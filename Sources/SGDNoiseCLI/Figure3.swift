import SGDNoise

/// Fig. 3: Σ versus the batch size (label noise) and L_test versus the weight decay (L2).
func figure3(_ context: RunContext) throws -> FigureResult {
    var result = try figure3Batch(context)
    print("")
    let decay = try figure3WeightDecay(context)
    result.frames += decay.frames
    result.summary += decay.summary
    return FigureResult(name: "fig3", title: "Batch size and weight decay",
                        parameters: result.parameters + decay.parameters, summary: result.summary, frames: result.frames)
}

// MARK: - Σ versus S

func figure3Batch(_ context: RunContext) throws -> FigureResult {
    printHeading("Fig. 3 (left) — Σ versus the batch size: 1-d label noise, a = 1.5, λ = 1, σ² = 1")
    let figure = try PaperFigures.SigmaVersusBatchSize(simulation: context.simulation("fig3"))
    let smallest = figure.smallestStableBatchSize, a = figure.a, lr = figure.learningRate
    print("  λ = \(num(lr)) is stable for S ≥ \(smallest) (λ*(S) = 2S/(a(S + 2)) must exceed λ)")
    print("  \(context.simulationSummary)")
    print("")
    var table = TextTable(["S", "λ*(S)"] + ComparisonRow.headers + ["κ exact"])
    var frame = Frame(["batch_size", "critical_learning_rate"] + ComparisonRow.frameColumns + ["tail_index_kesten"])
    for point in figure.points {
        let row = ComparisonRow(point.sigma, simulation: point.simulation)
        table.add(["\(point.batchSize)", num(point.criticalLearningRate, 4)] + row.cells + [num(point.tailIndexKesten, 3)])
        frame.add([.integer(point.batchSize), .number(point.criticalLearningRate)] + row.frameCells
                  + [.number(point.tailIndexKesten)])
    }
    print(table.render())
    print("")
    print(errorLegend)
    print("  At small S the exact Σ grows far above both approximations and diverges at S = \(smallest - 1). At large S it")
    print("  approaches the discrete-time Hessian λσ²/(S(2 − λa)); continuous time stays off by the factor")
    print("  (2 − λa)/2 = \(num((2 - lr * a) / 2, 3)) at every S, because λa = \(num(lr * a)) is not small.")

    var curve = Frame(["batch_size", "sigma_exact", "sigma_continuous_time", "sigma_discrete_hessian"])
    for c in figure.curve {
        curve.add([.integer(c.batchSize), .number(c.sigma.exact[0]), .number(c.sigma.continuousTime[0]),
                   .number(c.sigma.discreteHessian[0])])
    }
    return FigureResult(
        name: "fig3", title: "Sigma versus the batch size",
        parameters: [("batch", .object([("a", .number(a)), ("lr", .number(lr)), ("noise_var", .number(figure.noiseVariance))]))],
        summary: [("smallest_stable_batch_size", .number(Double(smallest)))],
        frames: [("fig3_batch", frame), ("fig3_batch_curve", curve)])
}

// MARK: - L_test versus γ

typealias WeightDecayFigure = PaperFigures.TestLossVersusWeightDecay

func figure3WeightDecay(_ context: RunContext) throws -> FigureResult {
    printHeading("Fig. 3 (right) — test loss versus weight decay γ: 1-d L2-regularised regression, a = 1, u = 1, no label noise")
    print("  L_test = E[½a(w − u)²] at stationarity [Thm 4]; noise-free GD would give the bias ½a(γu/(a + γ))² alone.")
    print("  \(context.simulationSummary)")
    let figure = try WeightDecayFigure(simulation: context.simulation("fig3"))
    var frame = Frame(["case", "lr", "batch_size", "weight_decay", "test_loss_sim", "test_loss_sim_stderr",
                       "test_loss_exact", "rel_err_exact", "z_exact", "test_loss_gd", "rel_err_gd", "sigma_exact",
                       "tail_index_hill", "tail_unreliable"])
    var curve = Frame(["case", "lr", "batch_size", "weight_decay", "test_loss_exact", "test_loss_gd"])
    var summary: [(String, JSON)] = []
    for c in figure.cases {
        let setting = c.setting
        for p in c.curve {
            curve.add([.text(setting.label), .number(setting.learningRate), .integer(setting.batchSize),
                       .number(p.weightDecay), .number(p.testLoss), .number(p.gradientDescentBias)])
        }
        print("")
        printWeightDecayCase(c)
        print(weightDecayTable(c, a: figure.a, frame: &frame).render())
        summary.append((setting.label, .object([
            ("lr", .number(setting.learningRate)), ("batch_size", .number(Double(setting.batchSize))),
            ("critical_learning_rate_gamma0", .number(c.criticalLearningRateWithoutDecay)),
            ("optimal_weight_decay", .number(c.optimalWeightDecay)), ("optimal_test_loss", .number(c.optimalTestLoss)),
            ("stable_window", .numbers([c.stableWindow.lower, c.stableWindow.upper])),
        ])))
    }
    print("")
    print(errorLegend)
    print("  L_test sim's se is ½a·se(Σ); the exact theory is Thm 4, computed by the spectral solver. At S = 1 and")
    print("  near the edges of the stable window the law is heavy-tailed; γ* of a large learning rate always lies")
    print("  close to an edge (the fluctuation term grows as the bias shrinks), so its simulation undershoots.")
    return FigureResult(
        name: "fig3", title: "Test loss versus weight decay",
        parameters: [("weight_decay", .object([("a", .number(figure.a)), ("u", .number(figure.u)),
                                               ("cases", .array(figure.cases.map { .object([
                                                   ("label", .string($0.setting.label)),
                                                   ("lr", .number($0.setting.learningRate)),
                                                   ("batch_size", .number(Double($0.setting.batchSize)))]) }))]))],
        summary: [("weight_decay", .object(summary))],
        frames: [("fig3_weight_decay", frame), ("fig3_weight_decay_curve", curve)])
}

/// The prose before a weight-decay case's table: its stable window and what γ* is.
private func printWeightDecayCase(_ c: WeightDecayFigure.Case) {
    let setting = c.setting, gammaStar = c.optimalWeightDecay, lossStar = c.optimalTestLoss
    print("  case \"\(setting.label)\": λ = \(num(setting.learningRate)), S = \(setting.batchSize); stable for "
        + "γ ∈ (\(fixed(c.stableWindow.lower, 3)), \(fixed(c.stableWindow.upper, 3))); "
        + "λ*(γ = 0) = \(num(c.criticalLearningRateWithoutDecay, 5))")
    if setting.learningRate < c.criticalLearningRateWithoutDecay {
        print("    γ = 0 is stable and, with no label noise, L_test(0) = 0 (w* = u and no noise at w*): γ* = 0.")
    } else if gammaStar < 0 {
        print("    λ > λ*(γ = 0): γ = 0 is unstable; γ* = \(num(gammaStar, 5)) < 0 (L_test = \(num(lossStar, 5))): "
            + "a negative weight decay is optimal [Cor 1].")
    } else {
        print("    λ > λ*(γ = 0): γ = 0 is unstable; γ* = \(num(gammaStar, 5)) > 0 (L_test = \(num(lossStar, 5))). "
            + "In 1-d the stable window of K = a + γ")
        print("    has geometric mean a√(2/S), above a when S < 2: Cor 1's negative γ* needs S > 2.")
    }
    if !setting.simulate {
        print("    Not simulated: at S = 1 and this λ the whole stable window is heavy-tailed (the simulator's Hill")
        print("    index is ≈ 2), where a sample variance does not converge.")
    }
}

/// The table of a weight-decay case (simulation against the exact L_test and the GD bias), whose
/// rows are also added to `frame`.
private func weightDecayTable(_ c: WeightDecayFigure.Case, a: Double, frame: inout Frame) -> TextTable {
    var table = TextTable(["γ", "L_test sim", "± se", "L_test exact", "err", "z", "GD bias", "err", "Σ exact"])
    for p in c.points {
        var sim: Double? = nil, se: Double? = nil, mark = TailMark.none, hill: Double? = nil
        if let r = p.simulation, !r.diverged {
            sim = r.testLoss
            se = 0.5 * a * r.sigmaStandardError[0, 0]
            mark = TailMark(r)
            hill = r.tailIndex
        }
        let err = { (v: Double) -> Double? in
            guard let sim else { return nil }
            if abs(sim) < 1e-300 && v == 0 { return 0 }
            return relativeError(v, sim)
        }
        var z: Double? = nil
        if let sim, let se, se > 0, p.testLoss.isFinite { z = (p.testLoss - sim) / se }
        let star = abs(p.weightDecay - c.optimalWeightDecay) < 1e-9 ? " (γ*)" : ""
        table.add([fixed(p.weightDecay, 4) + star, simulated(sim, mark), se.map { num($0, 2) } ?? "—",
                   p.testLoss.isFinite ? num(p.testLoss) : "∞ (unstable)", percent(err(p.testLoss)),
                   z.map { cformat("%+.1f", $0) } ?? "—", num(p.gradientDescentBias), percent(err(p.gradientDescentBias)),
                   num(p.sigma)])
        frame.add([.text(c.setting.label), .number(c.setting.learningRate), .integer(c.setting.batchSize),
                   .number(p.weightDecay), .number(sim), .number(se), .number(p.testLoss), .number(err(p.testLoss)),
                   .number(z), .number(p.gradientDescentBias), .number(err(p.gradientDescentBias)), .number(p.sigma),
                   .number(hill), .flag(mark.flagged)])
    }
    return table
}
