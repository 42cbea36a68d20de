import ArgumentParser
import SGDNoise

/// The models `predict` solves.
enum ModelName: String, ExpressibleByArgument, CaseIterable {
    case labelNoise = "label-noise"
    case inputNoise = "input-noise"
    case l2 = "l2"
    case highDimensional = "high-dimensional"
    case dampedNewton = "damped-newton"
    case naturalGradient = "natural-gradient"

    var reference: String {
        switch self {
        case .labelNoise: return "Lemma 1, Thm 2, Thm 3"
        case .inputNoise: return "App. E.3"
        case .l2: return "Prop 3, Thm 4"
        case .highDimensional: return "Prop 4, Thm 6"
        case .dampedNewton: return "Sec 6.4"
        case .naturalGradient: return "Sec 6.4"
        }
    }

    /// Whether the model has a label-noise variance, and its default.
    var noiseVarianceDefault: Double? {
        switch self {
        case .labelNoise, .highDimensional, .dampedNewton: return 1
        case .inputNoise: return 0
        case .l2, .naturalGradient: return nil
        }
    }
}

/// A value given as a number, a list (a diagonal) or a matrix.
enum OperandValue {
    case scalar(Double)
    case vector([Double])
    case matrix(Matrix)

    init(text: String, name: String) throws {
        let values = try parseNumberList(text, name)
        self = values.count == 1 && !text.contains(",") ? .scalar(values[0]) : .vector(values)
    }

    init(json: JSON, name: String) throws {
        if let x = json.doubleValue {
            self = .scalar(x)
        } else if case .array(let items) = json, let first = items.first, case .array = first {
            self = .matrix(try parseMatrix(from: json, name: name))
        } else {
            self = .vector(try numbers(from: json, name: name))
        }
    }

    var json: JSON {
        switch self {
        case .scalar(let x): return .number(x)
        case .vector(let v): return .numbers(v)
        case .matrix(let m): return matrixJSON(m)
        }
    }

    var isMatrix: Bool {
        if case .matrix = self { return true }
        return false
    }
}

func matrixJSON(_ m: Matrix) -> JSON {
    .array((0..<m.rows).map { i in .numbers((0..<m.columns).map { m[i, $0] }) })
}

func operatorJSON(_ op: SymmetricOperator) -> JSON {
    switch op {
    case .diagonal(let v): return .numbers(v)
    case .dense(let m): return matrixJSON(m)
    }
}

/// `sgdnoise-cli predict`: the exact stationary fluctuation of one model.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Predict the stationary fluctuation Σ, the noise C and the losses of a linear-regression model.",
        discussion: """
            A is the input covariance (= the Hessian): --spectrum gives its
            eigenvalues (A diagonal, O(D) for any D), --matrix a JSON file with A
            as an array of rows. "x or x1,x2,..." options take a number (x·I) or
            a diagonal.

            Model options:
              label-noise       --noise-var (default 1)
              input-noise       --input-noise B (required), --teacher u (default
                                ones), --noise-var (default 0)
              l2                --weight-decay Γ (required; negative allowed
                                while A + Γ ≻ 0), --teacher u (default ones)
              high-dimensional  --alpha N/D (required), --noise-var (default 1);
                                A is the empirical covariance Â
              damped-newton     --noise-var (default 1); learning rate Λ = λA⁻¹
              natural-gradient  learning rate Λ = (λ/S)C⁻¹; no label noise

            --spec FILE.json gives the problem as one object, e.g.
              {"model": "label-noise", "spectrum": [1, 0.5], "lr": 1.5,
               "batch_size": 10, "momentum": 0, "noise_var": 1}
            with the keys model, spectrum or matrix, lr, batch_size, momentum,
            noise_var, teacher, weight_decay, input_noise, alpha (weight_decay
            and input_noise may be matrices there). Options override the file.

            --json prints one object with the keys
              model, reference    the model and the paper's theorem
              dimension, layout   D; "diagonal" when A came as a spectrum (each
                                  matrix below is then its diagonal, D numbers),
                                  "dense" when matrices are arrays of D rows
              inputs              {lr, batch_size, momentum, noise_var, teacher,
                                  weight_decay, input_noise, alpha}; null if unused
              sigma, noise, mean  Σ, the noise C, the stationary mean (D numbers)
              trace_sigma, train_loss, test_loss,
              coupling_trace (Tr[MΣ]), flat_direction_noise          numbers
              kappa, critical_learning_rate, lr_over_critical   number or null
              baselines           label-noise only (else null): continuous_time
                                  and discrete_hessian, each {sigma, trace_sigma,
                                  rel_err_trace = (approx − exact)/exact}
              tail_index          1-d label noise with μ = 0 (else null):
                                  {kesten, paper, continuous_time}
            Non-finite numbers are null. Past the critical learning rate nothing
            is printed on stdout; the error on stderr (exit code 2) names λ*.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The model.", valueName: "name"))
    var model: ModelName?

    @Option(name: .long, help: ArgumentHelp("Eigenvalues of A (A diagonal).", valueName: "a1,a2,..."))
    var spectrum: String?

    @Option(name: .long, help: ArgumentHelp("A JSON file holding A as an array of rows.", valueName: "file.json"))
    var matrix: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Learning rate λ, or a positive diagonal preconditioner.",
                                            valueName: "λ or l1,l2,..."))
    var lr: String?

    @Option(name: .long, help: ArgumentHelp("Batch size S ≥ 1.", valueName: "S"))
    var batchSize: Int?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Momentum μ ∈ [0, 1) (default 0).", valueName: "μ"))
    var momentum: Double?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Label-noise variance σ² ≥ 0.", valueName: "σ²"))
    var noiseVar: Double?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("The teacher u (input-noise, l2; default all ones).", valueName: "u1,u2,..."))
    var teacher: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Γ for l2: γ (= γI) or a diagonal.", valueName: "γ or g1,g2,..."))
    var weightDecay: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("B for input-noise: b (= bI) or a diagonal.", valueName: "b or b1,b2,..."))
    var inputNoise: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("α = N/D for high-dimensional.", valueName: "α"))
    var alpha: Double?

    @Option(name: .long, help: ArgumentHelp("A JSON file with the whole problem (see above).", valueName: "file.json"))
    var spec: String?

    @Flag(name: .long, help: "Print JSON (schema above) instead of the summary.")
    var json = false

    func run() throws {
        let problem = try resolve()
        let output = try problem.solve()
        if json {
            print(output.json.render())
        } else {
            print(output.summary)
        }
    }

    /// The problem from --spec and the options (options win).
    func resolve() throws -> PredictProblem {
        var fields: [String: JSON] = [:]
        if let spec {
            let document = try JSON.parse(try readTextFile(spec), source: spec)
            guard case .object(let pairs) = document else { throw CLIError.input("\(spec): expected a JSON object") }
            let known = ["model", "spectrum", "matrix", "lr", "batch_size", "momentum", "noise_var", "teacher",
                         "weight_decay", "input_noise", "alpha"]
            for (key, value) in pairs {
                guard known.contains(key) else {
                    throw CLIError.input("\(spec): unknown key \"\(key)\" (known: \(known.joined(separator: ", ")))")
                }
                fields[key] = value
            }
        }
        let source = spec ?? "spec"
        func specNumber(_ key: String) throws -> Double? {
            guard let value = fields[key], value != .null else { return nil }
            guard let x = value.doubleValue else { throw CLIError.input("\(source): \(key) must be a number") }
            return x
        }
        func specOperand(_ key: String) throws -> OperandValue? {
            guard let value = fields[key], value != .null else { return nil }
            return try OperandValue(json: value, name: "\(source): \(key)")
        }

        // The model.
        var chosen = model
        if chosen == nil, let value = fields["model"] {
            guard case .string(let name) = value, let m = ModelName(rawValue: name) else {
                throw CLIError.input("\(source): model must be one of \(ModelName.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            chosen = m
        }
        guard let chosen else {
            throw CLIError.usage("--model is required: one of \(ModelName.allCases.map(\.rawValue).joined(separator: ", "))")
        }

        // A.
        if spectrum != nil && matrix != nil { throw CLIError.usage("give either --spectrum or --matrix, not both") }
        var a: SymmetricOperator
        if let spectrum {
            a = .diagonal(try parseNumberList(spectrum, "--spectrum"))
        } else if let matrix {
            a = .dense(try readMatrixFile(matrix))
        } else if let value = fields["spectrum"], value != .null {
            if fields["matrix"] != nil { throw CLIError.input("\(source): give either spectrum or matrix, not both") }
            a = .diagonal(try numbers(from: value, name: "\(source): spectrum"))
        } else if let value = fields["matrix"], value != .null {
            a = .dense(try parseMatrix(from: value, name: "\(source): matrix"))
        } else {
            throw CLIError.usage("give A with --spectrum a1,a2,... or --matrix FILE.json (or in --spec)")
        }

        // Scalars.
        guard let lrValue = try lr.map({ try OperandValue(text: $0, name: "--lr") }) ?? specOperand("lr") else {
            throw CLIError.usage("--lr is required")
        }
        if lrValue.isMatrix { throw CLIError.usage("lr must be a number or a diagonal") }
        let s: Int
        if let batchSize {
            s = batchSize
        } else if let x = try specNumber("batch_size") {
            guard x == x.rounded(), abs(x) < 1e15 else { throw CLIError.input("\(source): batch_size must be an integer") }
            s = Int(x)
        } else {
            throw CLIError.usage("--batch-size is required")
        }
        let mu = try momentum ?? specNumber("momentum") ?? 0
        let givenNoise = try noiseVar ?? specNumber("noise_var")
        let teacherValue = try teacher.map { try OperandValue(text: $0, name: "--teacher") } ?? specOperand("teacher")
        let decay = try weightDecay.map { try OperandValue(text: $0, name: "--weight-decay") } ?? specOperand("weight_decay")
        let bValue = try inputNoise.map { try OperandValue(text: $0, name: "--input-noise") } ?? specOperand("input_noise")
        let alphaValue = try alpha ?? specNumber("alpha")

        // Options a model does not use are mistakes.
        func reject(_ given: Bool, _ option: String) throws {
            if given { throw CLIError.usage("\(option) is not used by the \(chosen.rawValue) model") }
        }
        try reject(givenNoise != nil && chosen.noiseVarianceDefault == nil, "--noise-var")
        try reject(teacherValue != nil && ![.inputNoise, .l2].contains(chosen), "--teacher")
        try reject(decay != nil && chosen != .l2, "--weight-decay")
        try reject(bValue != nil && chosen != .inputNoise, "--input-noise")
        try reject(alphaValue != nil && chosen != .highDimensional, "--alpha")
        if chosen == .l2 && decay == nil { throw CLIError.usage("--weight-decay is required for the l2 model") }
        if chosen == .inputNoise && bValue == nil { throw CLIError.usage("--input-noise is required for the input-noise model") }
        if chosen == .highDimensional && alphaValue == nil { throw CLIError.usage("--alpha is required for the high-dimensional model") }
        if [.dampedNewton, .naturalGradient].contains(chosen), case .vector = lrValue {
            throw CLIError.usage("--lr must be a number for the \(chosen.rawValue) model")
        }

        // Dense operands make A dense.
        if decay?.isMatrix == true || bValue?.isMatrix == true, case .diagonal(let v) = a {
            a = .dense(Matrix.diagonal(v))
        }
        let d = a.dimension
        func asOperator(_ value: OperandValue, _ name: String) throws -> SymmetricOperator {
            switch (value, a) {
            case (.scalar(let x), .diagonal): return .diagonal([Double](repeating: x, count: d))
            case (.scalar(let x), .dense): return .dense(Matrix.diagonal([Double](repeating: x, count: d)))
            case (.vector(let v), _) where v.count != d:
                throw CLIError.usage("\(name) has \(v.count) entries but A is \(d)-dimensional")
            case (.vector(let v), .diagonal): return .diagonal(v)
            case (.vector(let v), .dense): return .dense(Matrix.diagonal(v))
            case (.matrix(let m), _):
                guard m.rows == d else { throw CLIError.usage("\(name) is \(m.rows)×\(m.rows) but A is \(d)×\(d)") }
                return .dense(m)
            }
        }
        let learningRate: LearningRate
        switch lrValue {
        case .scalar(let x): learningRate = .scalar(x)
        case .vector(let v):
            guard v.count == d else { throw CLIError.usage("--lr has \(v.count) entries but A is \(d)-dimensional") }
            learningRate = .diagonal(v)
        case .matrix: throw CLIError.usage("lr must be a number or a diagonal")
        }
        var u = [Double](repeating: 1, count: d)
        if let teacherValue {
            switch teacherValue {
            case .scalar(let x): u = [Double](repeating: x, count: d)
            case .vector(let v):
                guard v.count == d else { throw CLIError.usage("--teacher has \(v.count) entries but A is \(d)-dimensional") }
                u = v
            case .matrix: throw CLIError.usage("the teacher must be a vector")
            }
        }
        return PredictProblem(
            model: chosen, a: a, learningRate: learningRate, lrValue: lrValue, batchSize: s, momentum: mu,
            noiseVariance: givenNoise ?? chosen.noiseVarianceDefault, teacher: u, teacherGiven: teacherValue != nil,
            weightDecay: try decay.map { try asOperator($0, "weight decay") }, decayValue: decay,
            inputNoise: try bValue.map { try asOperator($0, "input noise") }, inputNoiseValue: bValue, alpha: alphaValue)
    }
}

/// A fully specified `predict` problem.
struct PredictProblem {
    let model: ModelName
    let a: SymmetricOperator
    let learningRate: LearningRate
    let lrValue: OperandValue
    let batchSize: Int
    let momentum: Double
    let noiseVariance: Double?
    let teacher: [Double]
    let teacherGiven: Bool
    let weightDecay: SymmetricOperator?
    let decayValue: OperandValue?
    let inputNoise: SymmetricOperator?
    let inputNoiseValue: OperandValue?
    let alpha: Double?

    var scalarLearningRate: Double? {
        if case .scalar(let x) = learningRate { return x }
        return nil
    }

    func solve() throws -> PredictOutput {
        let prediction: Prediction
        let sigma2 = noiseVariance ?? 0
        switch model {
        case .labelNoise:
            prediction = try labelNoise(a: a, noiseVariance: sigma2, learningRate: learningRate, batchSize: batchSize,
                                        momentum: momentum)
        case .inputNoise:
            prediction = try SGDNoise.inputNoise(a: a, b: inputNoise!, u: teacher, learningRate: learningRate,
                                                 batchSize: batchSize, noiseVariance: sigma2, momentum: momentum)
        case .l2:
            prediction = try l2Regularized(a: a, u: teacher, weightDecay: weightDecay!, learningRate: learningRate,
                                           batchSize: batchSize, momentum: momentum)
        case .highDimensional:
            prediction = try highDimensional(aHat: a, alpha: alpha!, noiseVariance: sigma2, learningRate: learningRate,
                                             batchSize: batchSize, momentum: momentum)
        case .dampedNewton:
            prediction = try dampedNewton(a: a, noiseVariance: sigma2, learningRate: scalarLearningRate!,
                                          batchSize: batchSize, momentum: momentum)
        case .naturalGradient:
            prediction = try naturalGradient(a: a, learningRate: scalarLearningRate!, batchSize: batchSize,
                                             momentum: momentum)
        }
        var baselines: [(String, SymmetricOperator)] = []
        if model == .labelNoise {
            baselines.append(("continuous_time", try continuousTime(
                a: a, noiseVariance: sigma2, learningRate: learningRate, batchSize: batchSize, momentum: momentum)))
            baselines.append(("discrete_hessian", try discreteHessian(
                a: a, noiseVariance: sigma2, learningRate: learningRate, batchSize: batchSize, momentum: momentum)))
        }
        var tail: (kesten: Double, paper: Double, continuous: Double)? = nil
        if model == .labelNoise, a.dimension == 1, momentum == 0, let lr = scalarLearningRate, a.diagonalEntries[0] > 0 {
            let a1 = a.diagonalEntries[0]
            if let kesten = try? tailIndex(a: a1, learningRate: lr, batchSize: batchSize, method: .kesten) {
                tail = (kesten, try tailIndex(a: a1, learningRate: lr, batchSize: batchSize, method: .paper),
                        try tailIndex(a: a1, learningRate: lr, batchSize: batchSize, method: .continuousTime))
            }
        }
        return PredictOutput(problem: self, prediction: prediction, baselines: baselines, tail: tail)
    }
}

/// A solved problem, rendered as text or JSON.
struct PredictOutput {
    let problem: PredictProblem
    let prediction: Prediction
    let baselines: [(String, SymmetricOperator)]
    let tail: (kesten: Double, paper: Double, continuous: Double)?

    var lrOverCritical: Double? {
        guard let lc = prediction.criticalLearningRate, lc.isFinite, lc > 0 else { return nil }
        switch problem.learningRate {
        case .scalar(let x): return x / lc
        default: return 1 / lc  // λ* is the largest stable multiple of the matrix learning rate
        }
    }

    var json: JSON {
        let p = problem
        let traceSigma = prediction.sigma.trace
        return .object([
            ("model", .string(p.model.rawValue)),
            ("reference", .string(p.model.reference)),
            ("dimension", .number(Double(p.a.dimension))),
            ("layout", .string(p.a.isDiagonal ? "diagonal" : "dense")),
            ("inputs", .object([
                ("lr", p.lrValue.json), ("batch_size", .number(Double(p.batchSize))), ("momentum", .number(p.momentum)),
                ("noise_var", .optional(p.noiseVariance)),
                ("teacher", [.inputNoise, .l2].contains(p.model) ? .numbers(p.teacher) : .null),
                ("weight_decay", p.decayValue?.json ?? .null), ("input_noise", p.inputNoiseValue?.json ?? .null),
                ("alpha", .optional(p.alpha)),
            ])),
            ("sigma", operatorJSON(prediction.sigma)),
            ("noise", operatorJSON(prediction.noise)),
            ("mean", .numbers(prediction.mean)),
            ("trace_sigma", .number(traceSigma)),
            ("train_loss", .number(prediction.trainLoss)),
            ("test_loss", .number(prediction.testLoss)),
            ("kappa", .optional(prediction.kappa)),
            ("critical_learning_rate", .optional(prediction.criticalLearningRate)),
            ("lr_over_critical", .optional(lrOverCritical)),
            ("coupling_trace", .number(prediction.couplingTrace)),
            ("flat_direction_noise", .number(prediction.flatDirectionNoise)),
            ("baselines", baselines.isEmpty ? .null : .object(baselines.map { name, sigma in
                (name, .object([("sigma", operatorJSON(sigma)), ("trace_sigma", .number(sigma.trace)),
                                ("rel_err_trace", .optional(relativeError(sigma.trace, traceSigma)))]))
            })),
            ("tail_index", tail.map { .object([("kesten", .number($0.kesten)), ("paper", .number($0.paper)),
                                               ("continuous_time", .number($0.continuous))]) } ?? .null),
        ])
    }

    var summary: String {
        let p = problem
        var lines: [String] = []
        let d = p.a.dimension
        lines.append("\(p.model.rawValue) model [\(p.model.reference)], D = \(d), A given "
            + (p.a.isDiagonal ? "by its spectrum (matrices below are diagonals)" : "as a matrix"))
        var settings = "  lr \(lrText)   batch size \(p.batchSize)   momentum \(num(p.momentum))"
        if let v = p.noiseVariance { settings += "   noise variance \(num(v))" }
        if let alpha = p.alpha { settings += "   α = N/D \(num(alpha))" }
        lines.append(settings)
        if let w = p.decayValue { lines.append("  weight decay \(valueText(w))") }
        if let b = p.inputNoiseValue { lines.append("  input noise B \(valueText(b))") }
        if [.inputNoise, .l2].contains(p.model) { lines.append("  teacher u \(list(p.teacher))") }
        lines.append("")
        var rows = TextTable(["quantity", "value"], leftColumns: 2)
        if let lc = prediction.criticalLearningRate {
            let ratio = lrOverCritical.map { "   (lr/λ* = \(fixed($0, 4)): stable)" } ?? ""
            rows.add(["critical learning rate λ*", num(lc, 7) + ratio])
        }
        if let k = prediction.kappa { rows.add(["κ", num(k, 7)]) }
        rows.add(["Tr Σ", num(prediction.sigma.trace, 7)])
        rows.add(["train loss", num(prediction.trainLoss, 7)])
        rows.add(["test loss", num(prediction.testLoss, 7)])
        rows.add(["Tr[MΣ] (noise coupling)", num(prediction.couplingTrace, 7)])
        if prediction.flatDirectionNoise > 0 {
            rows.add(["noise into flat directions", num(prediction.flatDirectionNoise, 7) + "  (random walk there)"])
        }
        for (name, sigma) in baselines {
            let label = name == "continuous_time" ? "Tr Σ, continuous time [Eq. 7]" : "Tr Σ, discrete-time Hessian"
            rows.add([label, num(sigma.trace, 7) + "   (\(percent(relativeError(sigma.trace, prediction.sigma.trace))) vs exact)"])
        }
        if let tail {
            rows.add(["tail index, exact (Kesten)", num(tail.kesten, 6)])
            rows.add(["tail index, paper 2S/(aλ) − S", num(tail.paper, 6)])
        }
        lines.append(rows.render(indent: "  "))
        lines.append("")
        lines += matrixLines("Σ (fluctuation)", prediction.sigma)
        lines += matrixLines("C (noise)", prediction.noise)
        if prediction.mean.contains(where: { $0 != 0 }) { lines.append("  mean w*  \(list(prediction.mean))") }
        return lines.joined(separator: "\n")
    }

    private var lrText: String { valueText(problem.lrValue) }

    private func valueText(_ v: OperandValue) -> String {
        switch v {
        case .scalar(let x): return num(x)
        case .vector(let xs): return list(xs)
        case .matrix(let m): return "\(m.rows)×\(m.columns) matrix"
        }
    }

    private func matrixLines(_ title: String, _ op: SymmetricOperator) -> [String] {
        switch op {
        case .diagonal(let v):
            return ["  \(title), diagonal: \(list(v, 6))"]
        case .dense(let m):
            guard m.rows <= 6 else {
                return ["  \(title): \(m.rows)×\(m.rows) (use --json for every entry); diagonal \(list(m.diagonalEntries, 6))"]
            }
            var table = TextTable([""] + (0..<m.rows).map { _ in "" })
            for i in 0..<m.rows { table.add([""] + (0..<m.rows).map { num(m[i, $0], 6) }) }
            let body = table.render(indent: "    ").split(separator: "\n").dropFirst(2)
            return ["  \(title):"] + body.map(String.init)
        }
    }
}
