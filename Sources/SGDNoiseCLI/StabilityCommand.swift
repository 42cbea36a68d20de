import ArgumentParser
import SGDNoise

/// The models whose critical learning rate `stability` tabulates.
enum StabilityModel: String, ExpressibleByArgument, CaseIterable {
    case labelNoise = "label-noise"
    case highDimensional = "high-dimensional"
    case l2Regularized = "l2-regularized"

    /// The library's model on A (the weight decay for l2).
    func model(a: SymmetricOperator, weightDecay: SymmetricOperator?) throws -> Model {
        switch self {
        case .labelNoise: return .labelNoise(a: a, noiseVariance: 0)
        case .highDimensional: return .highDimensional(aHat: a, alpha: 1, noiseVariance: 0)
        case .l2Regularized:
            guard let weightDecay else { throw CLIError.usage("--weight-decay is required with --model l2-regularized") }
            return .l2Regularized(a: a, u: [Double](repeating: 0, count: a.dimension), weightDecay: weightDecay)
        }
    }
}

/// `sgdnoise-cli stability`: λ* over batch sizes and momenta, and its width scaling.
struct StabilityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stability",
        abstract: "The critical learning rate λ* over batch sizes and momenta (docs/theory.md §6).",
        discussion: """
            λ* is the largest learning rate with a stationary distribution. For
            label noise it is the root of
              Σ_i λa_i / (2(1−μ) − ((1−μ)/(1+μ) + 1/S) λa_i) = S;
            it stays below the gradient-descent edge 2(1+μ)/a_max and reaches it
            only as S → ∞.

            --width-scaling tabulates the high-dimensional model's λ* [Thm 6] as
            the dimension D grows, the spectrum repeated to fill D (default a =
            1): λ* ≈ 2S/(āD) once D ≫ S (ā the mean eigenvalue) — why the
            learning rate of a wide network must shrink like 1/width [Sec 6.2].

            --json prints {model, dimension, a_max, momenta, batch_sizes,
            gd_edge: [per momentum], critical_learning_rate: [per batch size
            [per momentum]]}; with --width-scaling {model, a_mean, momentum,
            batch_sizes, rows: [{dimension, critical_learning_rate,
            reference_2S_over_aD, ratio: [per batch size]}]}.
            """
    )

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Eigenvalues of A (or of Â).", valueName: "a1,a2,..."))
    var spectrum: String?

    @Option(name: .long, help: ArgumentHelp("A JSON file holding A as an array of rows.", valueName: "file.json"))
    var matrix: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Batch sizes (default 1,2,4,…,1024; 8,64 with --width-scaling).",
                                            valueName: "S1,S2,..."))
    var batchSizes: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Momenta μ ∈ [0, 1) (with --width-scaling the first is used).",
                                            valueName: "μ1,μ2,..."))
    var momenta: String = "0,0.9"

    @Option(name: .long, help: ArgumentHelp("The noise model.", valueName: "name"))
    var model: StabilityModel = .labelNoise

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Γ for --model l2-regularized: γ (= γI) or a diagonal.", valueName: "γ or g1,g2,..."))
    var weightDecay: String?

    @Flag(name: .long, help: "Show the high-dimensional model's λ* as the dimension D grows.")
    var widthScaling = false

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Dimensions for --width-scaling.", valueName: "D1,D2,..."))
    var dims: String = "1,10,100,1000,10000,100000,1000000"

    @Flag(name: .long, help: "Print JSON (schema above) instead of the table.")
    var json = false

    func run() throws {
        let mus = try parseNumberList(momenta, "--momenta")
        if widthScaling {
            try runWidthScaling(momentum: mus[0])
            return
        }
        let a = try readA()
        let sizes = try parseIntegerList(batchSizes ?? "1,2,4,8,16,32,64,128,256,512,1024", "--batch-sizes")
        for s in sizes { try Validation.batchSize(s, name: "--batch-sizes") }
        for mu in mus { try Validation.momentum(mu, name: "--momenta") }
        let gamma = try readWeightDecay(like: a)
        let chosen = try model.model(a: a, weightDecay: gamma)
        let table = try sizes.map { s in try mus.map { try chosen.criticalLearningRate(batchSize: s, momentum: $0) } }
        var hessianMax = try a.eigenvalues().max() ?? 0
        if let gamma { hessianMax = try SymmetricOperator.dense(a.matrix + gamma.matrix).eigenvalues().max() ?? 0 }
        let edges = mus.map { 2 * (1 + $0) / hessianMax }
        if json {
            print(JSON.object([
                ("model", .string(model.rawValue)), ("dimension", .number(Double(a.dimension))),
                ("a_max", .number(hessianMax)), ("momenta", .numbers(mus)),
                ("batch_sizes", .numbers(sizes.map(Double.init))), ("gd_edge", .numbers(edges)),
                ("critical_learning_rate", .array(table.map(JSON.numbers))),
            ]).render())
            return
        }
        print("Critical learning rate λ* of the \(model.rawValue) model, D = \(a.dimension), largest Hessian eigenvalue \(num(hessianMax, 6))")
        print("  gradient-descent edge 2(1+μ)/h_max: " + zip(mus, edges).map { "\(num($1, 6)) (μ = \(num($0)))" }.joined(separator: ", "))
        print("")
        var headers = ["S"]
        for mu in mus { headers += ["λ* (μ = \(num(mu)))", "of GD edge"] }
        var text = TextTable(headers)
        for (s, row) in zip(sizes, table) {
            var cells = ["\(s)"]
            for (value, edge) in zip(row, edges) { cells += [num(value, 6), cformat("%.1f%%", 100 * value / edge)] }
            text.add(cells)
        }
        print(text.render())
        print("")
        print("  A small batch cuts the stable range far below the gradient-descent edge: the multiplicative")
        print("  minibatch noise (the Σ-dependent part of C, Lemma 1) diverges first.")
    }

    /// A from --spectrum or --matrix.
    private func readA() throws -> SymmetricOperator {
        if let a = try symmetricOperator(spectrum: spectrum, matrix: matrix) { return a }
        throw CLIError.usage("give A with --spectrum a1,a2,... or --matrix FILE.json")
    }

    /// Γ from --weight-decay (γ means γI), in A's layout; only with --model l2-regularized.
    private func readWeightDecay(like a: SymmetricOperator) throws -> SymmetricOperator? {
        guard let weightDecay else { return nil }
        guard model == .l2Regularized else { throw CLIError.usage("--weight-decay is used only with --model l2-regularized") }
        let values = try parseNumberList(weightDecay, "--weight-decay")
        let diag = values.count == 1 ? [Double](repeating: values[0], count: a.dimension) : values
        guard diag.count == a.dimension else {
            throw CLIError.usage("--weight-decay has \(diag.count) entries but A is \(a.dimension)-dimensional")
        }
        return a.isDiagonal ? .diagonal(diag) : .dense(Matrix.diagonal(diag))
    }

    private func runWidthScaling(momentum mu: Double) throws {
        if matrix != nil { throw CLIError.usage("--width-scaling takes --spectrum (repeated to fill each dimension), not --matrix") }
        if model != .labelNoise && model != .highDimensional {
            throw CLIError.usage("--width-scaling uses the high-dimensional model")
        }
        let base = try spectrum.map { try parseNumberList($0, "--spectrum") } ?? [1]
        let mean = base.reduce(0, +) / Double(base.count)
        guard mean > 0 else { throw CLIError.usage("--spectrum must have a positive mean") }
        let sizes = try parseIntegerList(batchSizes ?? "8,64", "--batch-sizes")
        let dimensions = try parseIntegerList(dims, "--dims")
        guard dimensions.allSatisfy({ $0 >= 1 && $0 <= 50_000_000 }) else {
            throw CLIError.usage("--dims: each dimension must lie between 1 and 50000000")
        }
        var rows: [(Int, [Double])] = []
        for d in dimensions {
            let values = (0..<d).map { base[$0 % base.count] }
            rows.append((d, try sizes.map {
                try Model.highDimensional(aHat: .diagonal(values), alpha: 1, noiseVariance: 0).criticalLearningRate(batchSize: $0, momentum: mu)
            }))
        }
        func reference(_ s: Int, _ d: Int) -> Double { 2 * Double(s) / (mean * Double(d)) }
        if json {
            print(JSON.object([
                ("model", .string("high-dimensional")), ("a_mean", .number(mean)), ("momentum", .number(mu)),
                ("batch_sizes", .numbers(sizes.map(Double.init))),
                ("rows", .array(rows.map { d, values in .object([
                    ("dimension", .number(Double(d))), ("critical_learning_rate", .numbers(values)),
                    ("reference_2S_over_aD", .numbers(sizes.map { reference($0, d) })),
                    ("ratio", .numbers(zip(sizes, values).map { $1 / reference($0, d) })),
                ]) })),
            ]).render())
            return
        }
        print("Width scaling of λ* in high-dimensional regression [Thm 6]: spectrum \(list(base)) repeated to D entries,")
        print("mean eigenvalue ā = \(num(mean)), momentum \(num(mu)); λ* → 2S/(āD) once D ≫ S")
        print("")
        var headers = ["D"]
        for s in sizes { headers += ["λ* (S = \(s))", "2S/(āD)", "ratio"] }
        var text = TextTable(headers)
        for (d, values) in rows {
            var cells = ["\(d)"]
            for (s, value) in zip(sizes, values) {
                cells += [num(value, 6), num(reference(s, d), 6), fixed(value / reference(s, d), 4)]
            }
            text.add(cells)
        }
        print(text.render())
        print("")
        print("  For a = 1 the root of Σ_i 1/(2/(λa) − 1 + 1/S) = S is λ* = 2S/(a(D + S − 1)) exactly.")
    }
}
