import ArgumentParser
import SGDNoise

/// The learning-rate shapes `curve` builds (the library's `Schedule.Shape`).
enum DecayName: String, ExpressibleByArgument, CaseIterable {
    case constant, step, milestones, exponential, cosine
    static let choices = allCases.map(\.rawValue).joined(separator: ", ")
}

/// `sgdnoise-cli curve`: the exact learning curve of one model under a schedule.
struct CurveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curve",
        abstract: "The exact learning curve (losses, Tr Σ_t) of a linear-regression model under a schedule.",
        discussion: """
            The model, A and its values are given as for 'predict' (label-noise,
            input-noise, l2-regularized, high-dimensional); --lr is the initial
            learning rate λ₀ (a number), --batch-size the initial S₀ and
            --momentum μ (constant). The moments are exact at every step
            (docs/theory.md section 9), from w₀ = --w0 (default 0; label-noise
            and high-dimensional measure w from the minimum).

            Schedule (T = --steps updates):
              --decay constant      λ_t = λ₀ (the default)
              --decay step          λ₀·factor^⌊(t−1)/every⌋   (--factor, --every)
              --decay milestones    λ₀·factor^(milestones passed) (--factor,
                                    --milestones t1,t2,...)
              --decay exponential   λ₀·factor^(t−1)            (--factor)
              --decay cosine        from λ₀ to --final along half a cosine
              --warmup W            linear from λ₀/W up to the shape over the
                                    first W updates
              --batch-milestones t1,t2,... --batch-factor k
                                    S multiplied by k at each of these updates

            --record t1,t2,... are the steps reported (0 is w₀; default 101
            evenly spaced steps, or every step when T ≤ 100).

            Output: CSV on standard output with the columns
              step, lr, batch_size, momentum   the update that produced the step
                                               (step 0: the first update's)
              train_loss, test_loss, trace_sigma
            --json prints one object instead: {model, dimension, steps, lr,
            batch_size, momentum, train_loss, test_loss, trace_sigma,
            unstable_from, relaxation: {mode_times, moment_time, mean_time,
            stationary_train_loss, stationary_test_loss, settled_at, tolerance}}.
            --out FILE writes the output there instead.

            --spec FILE.json takes the keys of 'predict' plus steps, decay,
            factor, every, milestones, final, warmup, batch_milestones,
            batch_factor, record and w0. Options override the file. A schedule
            that crosses the critical learning rate is not an error:
            unstable_from names the first unstable update.
            """
    )

    @OptionGroup var problem: ProblemOptions

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("T, the number of updates.", valueName: "T"))
    var steps: Int?

    @Option(name: .long, help: ArgumentHelp("The learning-rate shape: \(DecayName.choices).", valueName: "shape"))
    var decay: DecayName?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("The decay factor (step, milestones, exponential).", valueName: "f"))
    var factor: Double?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Updates between decays (step).", valueName: "k"))
    var every: Int?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Updates at which λ is multiplied by the factor.", valueName: "t1,t2,..."))
    var milestones: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("The final learning rate (cosine).", valueName: "λ_T"))
    var final: Double?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Linear warm-up over the first W updates.", valueName: "W"))
    var warmup: Int?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Updates at which S is multiplied by --batch-factor.", valueName: "t1,t2,..."))
    var batchMilestones: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("The batch-size factor at each batch milestone.", valueName: "k"))
    var batchFactor: Int?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("The steps to report.", valueName: "t1,t2,..."))
    var record: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("The start w₀ (default 0).", valueName: "w1,w2,..."))
    var w0: String?

    @Flag(name: .long, help: "Print JSON (schema above) instead of CSV.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Write the output to this file.", valueName: "file"))
    var out: String?

    static let specKeys = ["steps", "decay", "factor", "every", "milestones", "final", "warmup", "batch_milestones",
                           "batch_factor", "record", "w0"]

    func run() throws {
        let file = try SpecFile(path: problem.spec, extraKeys: Self.specKeys)
        let base = try problem.resolve(file: file)
        guard case .scalar(let lr0) = base.learningRate else {
            throw CLIError.usage("--lr must be a number for a learning curve (the initial learning rate)")
        }
        let schedule = try readSchedule(file, lr0: lr0, batchSize: base.batchSize, momentum: base.momentum)
        let recorded = try record.map { try parseIntegerList($0, "--record") } ?? file.integers("record")
        let start = try w0.map { try parseNumberList($0, "--w0") } ?? file.given("w0").map {
            try numbers(from: $0, name: "\(file.source): w0")
        }
        let curve = try learningCurve(model: base.model, schedule: schedule, record: recorded, w0: start,
                                      includeSigma: false, includeMean: false)
        let text = json ? Self.json(curve, schedule: schedule, problem: base).render() + "\n"
                        : Self.frame(curve, schedule: schedule).csv
        if let out { try writeTextFile(out, text) } else { print(text, terminator: "") }
    }

    /// The schedule from the options and the spec file (options win).
    private func readSchedule(_ file: SpecFile, lr0: Double, batchSize s0: Int, momentum mu: Double) throws -> Schedule {
        func integer(_ value: Int?, _ key: String) throws -> Int? { try value ?? file.integer(key) }
        func integers(_ text: String?, _ option: String, _ key: String) throws -> [Int]? {
            try text.map { try parseIntegerList($0, option) } ?? file.integers(key)
        }
        guard let t = try integer(steps, "steps") else { throw CLIError.usage("--steps is required") }
        let shapeName: DecayName
        if let decay {
            shapeName = decay
        } else if let value = file.given("decay") {
            guard case .string(let text) = value, let name = DecayName(rawValue: text) else {
                throw CLIError.usage("\(file.source): decay must be one of \(DecayName.choices)")
            }
            shapeName = name
        } else {
            shapeName = .constant
        }
        let f = try factor ?? file.number("factor")
        func requireFactor() throws -> Double {
            guard let f else { throw CLIError.usage("--factor is required for --decay \(shapeName.rawValue)") }
            return f
        }
        var shape: Schedule.Shape
        switch shapeName {
        case .constant:
            shape = .constant(lr0)
        case .step:
            guard let k = try integer(every, "every") else { throw CLIError.usage("--every is required for --decay step") }
            shape = .stepDecay(initial: lr0, factor: try requireFactor(), every: k)
        case .milestones:
            guard let at = try integers(milestones, "--milestones", "milestones") else {
                throw CLIError.usage("--milestones is required for --decay milestones")
            }
            shape = .milestones(initial: lr0, factor: try requireFactor(), at: at)
        case .exponential:
            shape = .exponential(initial: lr0, factor: try requireFactor())
        case .cosine:
            guard let end = try final ?? file.number("final") else { throw CLIError.usage("--final is required for --decay cosine") }
            shape = .cosine(initial: lr0, final: end)
        }
        if let w = try integer(warmup, "warmup") { shape = .warmup(steps: w, then: shape) }
        var batch = Schedule.BatchSizeShape.constant(s0)
        if let at = try integers(batchMilestones, "--batch-milestones", "batch_milestones") {
            guard let k = try integer(batchFactor, "batch_factor") else {
                throw CLIError.usage("--batch-factor is required with --batch-milestones")
            }
            batch = .ramp(initial: s0, factor: k, at: at)
        }
        return try Schedule(steps: t, learningRate: shape, batchSize: batch, momentum: .constant(mu))
    }

    /// The hyperparameters of the update that produced step t (step 0: the first update's).
    private static func update(_ t: Int) -> Int { max(t, 1) - 1 }

    static func frame(_ curve: LearningCurve, schedule: Schedule) -> Frame {
        var frame = Frame(["step", "lr", "batch_size", "momentum", "train_loss", "test_loss", "trace_sigma"])
        for (k, t) in curve.steps.enumerated() {
            let u = update(t)
            frame.add([.integer(t), .number(schedule.learningRates[u]), .integer(schedule.batchSizes[u]),
                       .number(schedule.momenta[u]), .number(curve.trainLoss[k]), .number(curve.testLoss[k]),
                       .number(curve.trace[k])])
        }
        return frame
    }

    static func json(_ curve: LearningCurve, schedule: Schedule, problem: PredictProblem) -> JSON {
        let updates = curve.steps.map(update)
        let r = curve.relaxation
        return .object([
            ("model", .string(problem.name.rawValue)),
            ("dimension", .number(Double(problem.a.dimension))),
            ("steps", .numbers(curve.steps.map(Double.init))),
            ("lr", .numbers(updates.map { schedule.learningRates[$0] })),
            ("batch_size", .numbers(updates.map { Double(schedule.batchSizes[$0]) })),
            ("momentum", .numbers(updates.map { schedule.momenta[$0] })),
            ("train_loss", .numbers(curve.trainLoss)),
            ("test_loss", .numbers(curve.testLoss)),
            ("trace_sigma", .numbers(curve.trace)),
            ("unstable_from", .optional(curve.unstableFrom.map(Double.init))),
            ("relaxation", .object([
                ("mode_times", .numbers(r.modeTimes)),
                ("moment_time", .number(r.momentTime)),
                ("mean_time", .number(r.meanTime)),
                ("stationary_train_loss", .optional(r.stationaryTrainLoss)),
                ("stationary_test_loss", .optional(r.stationaryTestLoss)),
                ("settled_at", .optional(r.settledAt.map(Double.init))),
                ("tolerance", .number(r.tolerance)),
            ])),
        ])
    }
}
