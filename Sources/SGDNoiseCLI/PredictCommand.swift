import ArgumentParser
import SGDNoise

/// The models `predict` solves, in the command line's spelling (the library's `Model.Kind`).
enum ModelName: String, ExpressibleByArgument, CaseIterable {
    case labelNoise = "label-noise"
    case inputNoise = "input-noise"
    case l2Regularized = "l2-regularized"
    case highDimensional = "high-dimensional"
    case dampedNewton = "damped-newton"
    case naturalGradient = "natural-gradient"

    var kind: Model.Kind {
        switch self {
        case .labelNoise: return .labelNoise
        case .inputNoise: return .inputNoise
        case .l2Regularized: return .l2Regularized
        case .highDimensional: return .highDimensional
        case .dampedNewton: return .dampedNewton
        case .naturalGradient: return .naturalGradient
        }
    }

    /// The label-noise variance when the model takes one and none is given.
    var noiseVarianceDefault: Double? {
        guard kind.arguments.contains(.noiseVariance) else { return nil }
        return self == .inputNoise ? 0 : 1
    }

    static let choices = allCases.map(\.rawValue).joined(separator: ", ")
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
    case .weightedSpectrum(let w): return .numbers(w.nodes)
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
              input-noise       --input-noise B (required), --u u (default
                                ones), --noise-var (default 0)
              l2-regularized    --weight-decay Γ (required; negative allowed
                                while A + Γ ≻ 0), --u u (default ones)
              high-dimensional  --alpha N/D (required), --noise-var (default 1);
                                A is the empirical covariance Â
              damped-newton     --noise-var (default 1); learning rate Λ = λA⁻¹
              natural-gradient  learning rate Λ = (λ/S)C⁻¹; no label noise

            --spec FILE.json gives the problem as one object, e.g.
              {"model": "label-noise", "spectrum": [1, 0.5], "lr": 1.5,
               "batch_size": 10, "momentum": 0, "noise_var": 1}
            with the keys model, spectrum or matrix, lr, batch_size, momentum,
            noise_var, u, weight_decay, input_noise, alpha (weight_decay
            and input_noise may be matrices there). Options override the file.

            --json prints one object with the keys
              model, reference    the model and the paper's theorem
              dimension, layout   D; "diagonal" when A came as a spectrum (each
                                  matrix below is then its diagonal, D numbers),
                                  "dense" when matrices are arrays of D rows
              inputs              {lr, batch_size, momentum, noise_var, u,
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

    @OptionGroup var problem: ProblemOptions

    @Flag(name: .long, help: "Print JSON (schema above) instead of the summary.")
    var json = false

    func run() throws {
        let output = try problem.resolve(file: SpecFile(path: problem.spec)).solve()
        if json {
            print(output.json.render())
        } else {
            print(output.summary)
        }
    }

}

/// The problem every model command takes: the model, A, the optimiser and the model's own values,
/// as options or in a --spec file (options win).
struct ProblemOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The model.", valueName: "name"))
    var model: ModelName?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Eigenvalues of A (A diagonal).", valueName: "a1,a2,..."))
    var spectrum: String?

    @Option(name: .long, help: ArgumentHelp("A JSON file holding A as an array of rows.", valueName: "file.json"))
    var matrix: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Learning rate λ, or a positive diagonal preconditioner.",
                                                                      valueName: "λ or l1,l2,..."))
    var lr: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Batch size S ≥ 1.", valueName: "S"))
    var batchSize: Int?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Momentum μ ∈ [0, 1) (default 0).", valueName: "μ"))
    var momentum: Double?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Label-noise variance σ² ≥ 0.", valueName: "σ²"))
    var noiseVar: Double?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("u, the teacher (input-noise, l2-regularized; default all ones).", valueName: "u1,u2,..."))
    var u: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Γ for l2-regularized: γ (= γI) or a diagonal.", valueName: "γ or g1,g2,..."))
    var weightDecay: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("B for input-noise: b (= bI) or a diagonal.", valueName: "b or b1,b2,..."))
    var inputNoise: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("α = N/D for high-dimensional.", valueName: "α"))
    var alpha: Double?

    @Option(name: .long, help: ArgumentHelp("A JSON file with the whole problem (see above).", valueName: "file.json"))
    var spec: String?

    /// The problem from --spec and the options (options win).
    func resolve(file: SpecFile) throws -> PredictProblem {
        let name = try chooseModel(file)
        var a = try readA(file)
        let lrValue = try readOperand(lr, "--lr", file, "lr")
        guard let lrValue else { throw CLIError.usage("--lr is required") }
        let s = try readBatchSize(file)
        let mu = try momentum ?? file.number("momentum") ?? 0
        let operands = Operands(
            noiseVariance: try noiseVar ?? file.number("noise_var"),
            u: try readOperand(u, "--u", file, "u"),
            weightDecay: try readOperand(weightDecay, "--weight-decay", file, "weight_decay"),
            inputNoise: try readOperand(inputNoise, "--input-noise", file, "input_noise"),
            alpha: try alpha ?? file.number("alpha"))
        try operands.check(for: name, learningRate: lrValue)
        try validateOptimizer(learningRate: lrValue, batchSize: s, momentum: mu, file: file)
        // Dense operands make A dense.
        if operands.weightDecay?.isMatrix == true || operands.inputNoise?.isMatrix == true, case .diagonal(let v) = a {
            a = .dense(Matrix.diagonal(v))
        }
        let learningRate = try lrValue.learningRate(dimension: a.dimension)
        let model = try operands.model(name, a: a)
        return PredictProblem(
            name: name, model: model, learningRate: learningRate, lrValue: lrValue, batchSize: s, momentum: mu,
            noiseVariance: operands.noiseVariance ?? name.noiseVarianceDefault,
            u: name.kind.arguments.contains(.u) ? try operands.teacherVector(dimension: a.dimension) : nil,
            decayValue: operands.weightDecay, inputNoiseValue: operands.inputNoise, alpha: operands.alpha)
    }

    /// --model, or "model" in the spec file.
    private func chooseModel(_ file: SpecFile) throws -> ModelName {
        if let model { return model }
        guard let value = file.fields["model"] else {
            throw CLIError.usage("--model is required: one of \(ModelName.choices)")
        }
        guard case .string(let text) = value, let name = ModelName(rawValue: text) else {
            throw CLIError.usage("\(file.source): model must be one of \(ModelName.choices)")
        }
        return name
    }

    /// A from --spectrum or --matrix, or from "spectrum" or "matrix" in the spec file.
    private func readA(_ file: SpecFile) throws -> SymmetricOperator {
        if let a = try symmetricOperator(spectrum: spectrum, matrix: matrix) { return a }
        let fromSpectrum = file.given("spectrum"), fromMatrix = file.given("matrix")
        if fromSpectrum != nil && fromMatrix != nil {
            throw CLIError.usage("\(file.source): give either spectrum or matrix, not both")
        }
        if let fromSpectrum { return .diagonal(try numbers(from: fromSpectrum, name: "\(file.source): spectrum")) }
        if let fromMatrix { return .dense(try parseMatrix(from: fromMatrix, name: "\(file.source): matrix")) }
        throw CLIError.usage("give A with --spectrum a1,a2,... or --matrix FILE.json (or in --spec)")
    }

    /// The library's rules for the optimiser and σ², naming each value as the user wrote it: the
    /// option (--batch-size) or the spec file's key (batch_size). A refusal exits with 1 either way.
    private func validateOptimizer(learningRate: OperandValue, batchSize s: Int, momentum mu: Double, file: SpecFile) throws {
        func name(_ option: String, given: Bool, key: String) -> String { given ? option : "\(file.source): \(key)" }
        try Validation.batchSize(s, name: name("--batch-size", given: batchSize != nil, key: "batch_size"))
        try Validation.momentum(mu, name: name("--momentum", given: momentum != nil, key: "momentum"))
        if case .scalar(let x) = learningRate { try Validation.learningRate(x, name: name("--lr", given: lr != nil, key: "lr")) }
        if let v = try noiseVar ?? file.number("noise_var") {
            try Validation.nonNegative(v, name: name("--noise-var", given: noiseVar != nil, key: "noise_var"))
        }
    }

    /// --batch-size, or an integer "batch_size" in the spec file (its range is the library's to check).
    private func readBatchSize(_ file: SpecFile) throws -> Int {
        if let batchSize { return batchSize }
        guard let s = try file.integer("batch_size") else { throw CLIError.usage("--batch-size is required") }
        return s
    }

    /// An operand option, or its key in the spec file.
    private func readOperand(_ text: String?, _ option: String, _ file: SpecFile, _ key: String) throws -> OperandValue? {
        if let text { return try OperandValue(text: text, name: option) }
        return try file.operand(key)
    }
}

/// The fields of a --spec file (none without one).
struct SpecFile {
    static let keys = ["model", "spectrum", "matrix", "lr", "batch_size", "momentum", "noise_var", "u",
                       "weight_decay", "input_noise", "alpha"]
    let source: String
    let fields: [String: JSON]

    /// - Parameter extraKeys: keys a command reads beyond the problem's (`keys`).
    init(path: String?, extraKeys: [String] = []) throws {
        let known = Self.keys + extraKeys
        source = path ?? "spec"
        guard let path else { fields = [:]; return }
        let document = try JSON.parse(try readTextFile(path), source: path)
        guard case .object(let pairs) = document else { throw CLIError.usage("\(path): expected a JSON object") }
        var fields: [String: JSON] = [:]
        for (key, value) in pairs {
            guard known.contains(key) else {
                throw CLIError.usage("\(path): unknown key \"\(key)\" (known: \(known.joined(separator: ", ")))")
            }
            fields[key] = value
        }
        self.fields = fields
    }

    /// The value of `key`, nil when absent or null.
    func given(_ key: String) -> JSON? {
        guard let value = fields[key], value != .null else { return nil }
        return value
    }

    /// A number field.
    func number(_ key: String) throws -> Double? {
        guard let value = given(key) else { return nil }
        guard let x = value.doubleValue else { throw CLIError.usage("\(source): \(key) must be a number") }
        return x
    }

    /// An integer field.
    func integer(_ key: String) throws -> Int? {
        guard let x = try number(key) else { return nil }
        guard let k = exactInteger(x) else { throw CLIError.usage("\(source): \(key) must be an integer, got \(num(x))") }
        return k
    }

    /// A field holding a number or an array of integers.
    func integers(_ key: String) throws -> [Int]? {
        try given(key).map {
            try numbers(from: $0, name: "\(source): \(key)").map { x in
                guard let k = exactInteger(x) else { throw CLIError.usage("\(source): \(key) must hold integers, got \(num(x))") }
                return k
            }
        }
    }

    /// A number, list or matrix field.
    func operand(_ key: String) throws -> OperandValue? {
        try given(key).map { try OperandValue(json: $0, name: "\(source): \(key)") }
    }
}

/// The model-specific values of a `predict` problem, as given.
struct Operands {
    let noiseVariance: Double?
    let u: OperandValue?
    let weightDecay: OperandValue?
    let inputNoise: OperandValue?
    let alpha: Double?

    /// The model arguments given.
    var given: [Model.Argument] {
        var out: [Model.Argument] = []
        if noiseVariance != nil { out.append(.noiseVariance) }
        if u != nil { out.append(.u) }
        if weightDecay != nil { out.append(.weightDecay) }
        if inputNoise != nil { out.append(.inputNoise) }
        if alpha != nil { out.append(.alpha) }
        return out
    }

    /// Usage errors: an argument the model does not take, a required one missing, a list learning
    /// rate where the model needs a number.
    func check(for name: ModelName, learningRate: OperandValue) throws {
        let takes = name.kind.arguments
        for argument in given where !takes.contains(argument) {
            throw CLIError.usage("\(Self.option(argument)) is not used by the \(name.rawValue) model")
        }
        let required: [Model.Argument] = [.weightDecay, .inputNoise, .alpha]
        for argument in required where takes.contains(argument) && !given.contains(argument) {
            throw CLIError.usage("\(Self.option(argument)) is required for the \(name.rawValue) model")
        }
        if name.kind.needsScalarLearningRate, case .vector = learningRate {
            throw CLIError.usage("--lr must be a number for the \(name.rawValue) model")
        }
    }

    /// The library's model for A (dense operands were made to match A's layout).
    func model(_ name: ModelName, a: SymmetricOperator) throws -> Model {
        let d = a.dimension
        let variance = noiseVariance ?? name.noiseVarianceDefault ?? 0
        switch name.kind {
        case .labelNoise:
            return .labelNoise(a: a, noiseVariance: variance)
        case .inputNoise:
            return .inputNoise(a: a, b: try Self.require(inputNoise, .inputNoise).symmetricOperator(like: a, "input noise"),
                               u: try teacherVector(dimension: d), noiseVariance: variance)
        case .l2Regularized:
            return .l2Regularized(a: a, u: try teacherVector(dimension: d),
                                  weightDecay: try Self.require(weightDecay, .weightDecay).symmetricOperator(like: a, "weight decay"))
        case .highDimensional:
            return .highDimensional(aHat: a, alpha: try Self.require(alpha, .alpha), noiseVariance: variance)
        case .dampedNewton:
            return .dampedNewton(a: a, noiseVariance: variance)
        case .naturalGradient:
            return .naturalGradient(a: a)
        }
    }

    /// u: the given teacher (a number means u·1), all ones by default.
    func teacherVector(dimension d: Int) throws -> [Double] {
        switch u {
        case nil: return [Double](repeating: 1, count: d)
        case .scalar(let x)?: return [Double](repeating: x, count: d)
        case .vector(let v)?:
            guard v.count == d else { throw CLIError.usage("--u has \(v.count) entries but A is \(d)-dimensional") }
            return v
        case .matrix?: throw CLIError.usage("the teacher must be a vector")
        }
    }

    private static func require<T>(_ value: T?, _ argument: Model.Argument) throws -> T {
        guard let value else { throw CLIError.usage("\(option(argument)) is required") }
        return value
    }

    /// The command-line option of a model argument.
    static func option(_ argument: Model.Argument) -> String {
        switch argument {
        case .noiseVariance: return "--noise-var"
        case .u: return "--u"
        case .weightDecay: return "--weight-decay"
        case .inputNoise: return "--input-noise"
        case .alpha: return "--alpha"
        }
    }
}

extension OperandValue {
    /// The operand as a symmetric operator of A's dimension and layout (a number means x·I).
    func symmetricOperator(like a: SymmetricOperator, _ name: String) throws -> SymmetricOperator {
        let d = a.dimension
        switch (self, a) {
        case (.scalar(let x), .diagonal), (.scalar(let x), .weightedSpectrum): return .diagonal([Double](repeating: x, count: d))
        case (.scalar(let x), .dense): return .dense(Matrix.diagonal([Double](repeating: x, count: d)))
        case (.vector(let v), _) where v.count != d:
            throw CLIError.usage("\(name) has \(v.count) entries but A is \(d)-dimensional")
        case (.vector(let v), .diagonal), (.vector(let v), .weightedSpectrum): return .diagonal(v)
        case (.vector(let v), .dense): return .dense(Matrix.diagonal(v))
        case (.matrix(let m), _):
            guard m.rows == d else { throw CLIError.usage("\(name) is \(m.rows)×\(m.rows) but A is \(d)×\(d)") }
            return .dense(m)
        }
    }

    /// The operand as a learning rate: λ, or a diagonal of A's dimension.
    func learningRate(dimension d: Int) throws -> LearningRate {
        switch self {
        case .scalar(let x): return .scalar(x)
        case .vector(let v):
            guard v.count == d else { throw CLIError.usage("--lr has \(v.count) entries but A is \(d)-dimensional") }
            return .diagonal(v)
        case .matrix: throw CLIError.usage("lr must be a number or a diagonal")
        }
    }
}

/// A fully specified `predict` problem.
struct PredictProblem {
    let name: ModelName
    let model: Model
    let learningRate: LearningRate
    let lrValue: OperandValue
    let batchSize: Int
    let momentum: Double
    /// What the output reports as inputs (nil where the model takes none).
    let noiseVariance: Double?
    let u: [Double]?
    let decayValue: OperandValue?
    let inputNoiseValue: OperandValue?
    let alpha: Double?

    var a: SymmetricOperator { model.a }

    func solve() throws -> PredictOutput {
        let prediction = try model.predict(learningRate: learningRate, batchSize: batchSize, momentum: momentum)
        var baselines: [(String, SymmetricOperator)] = []
        var tail: (kesten: Double, paper: Double, continuous: Double)? = nil
        if case .labelNoise(let a, let variance) = model {
            baselines.append(("continuous_time", try continuousTime(
                a: a, noiseVariance: variance, learningRate: learningRate, batchSize: batchSize, momentum: momentum)))
            baselines.append(("discrete_hessian", try discreteHessian(
                a: a, noiseVariance: variance, learningRate: learningRate, batchSize: batchSize, momentum: momentum)))
            if a.dimension == 1, momentum == 0, case .scalar(let lr) = learningRate, let a1 = a.diagonalEntries.first, a1 > 0,
               let kesten = try? tailIndex(a: a1, learningRate: lr, batchSize: batchSize, method: .kesten) {
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
            ("model", .string(p.name.rawValue)),
            ("reference", .string(p.name.kind.reference)),
            ("dimension", .number(Double(p.a.dimension))),
            ("layout", .string(p.a.isDiagonal ? "diagonal" : "dense")),
            ("inputs", .object([
                ("lr", p.lrValue.json), ("batch_size", .number(Double(p.batchSize))), ("momentum", .number(p.momentum)),
                ("noise_var", .optional(p.noiseVariance)),
                ("u", p.u.map(JSON.numbers) ?? .null),
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
        lines.append("\(p.name.rawValue) model [\(p.name.kind.reference)], D = \(d), A given "
            + (p.a.isDiagonal ? "by its spectrum (matrices below are diagonals)" : "as a matrix"))
        var settings = "  lr \(lrText)   batch size \(p.batchSize)   momentum \(num(p.momentum))"
        if let v = p.noiseVariance { settings += "   noise variance \(num(v))" }
        if let alpha = p.alpha { settings += "   α = N/D \(num(alpha))" }
        lines.append(settings)
        if let w = p.decayValue { lines.append("  weight decay \(valueText(w))") }
        if let b = p.inputNoiseValue { lines.append("  input noise B \(valueText(b))") }
        if let u = p.u { lines.append("  teacher u \(list(u))") }
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
        case .weightedSpectrum(let w):
            return ["  \(title), at the nodes: \(list(w.nodes, 6))"]
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
