import ArgumentParser
import SGDNoise

/// The figures `reproduce` knows.
enum FigureName: String, ExpressibleByArgument, CaseIterable {
    case fig2, fig3, fig4a, fig4b, fig4c, all
}

/// `sgdnoise-cli reproduce <figure>`: the paper's figures, theory against simulation.
struct ReproduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reproduce",
        abstract: "Reproduce a figure of the paper: exact theory, approximations and Monte-Carlo SGD.",
        discussion: """
            Figures (docs/theory.md §7 in the source repository):
              fig4a  1-d label noise (a = 1, S = 10, σ² = 1): Σ versus λ up to λ*
              fig4b  2-d, Hessian eigenvalues 1 and 0.5, λ = 1.5, S = 50: Σ's shape
              fig4c  the same at S = 10, plus a light-tailed check at λ = 1.0
              fig3   Σ versus S (a = 1.5, λ = 1); L_test versus weight decay γ
                     and γ* (a = 1, u = 1; λ = 0.5, S = 1 and large λ)
              fig2   tail of the 1-d law at aλ = 1: Hill estimates versus the
                     paper's 2S/(aλ) − S and the exact Kesten index
              all    every figure (about a minute on two cores)

            Each figure prints aligned tables: "err" is (value − simulation) /
            simulation, z is (exact − simulation) / standard error; † marks a
            simulated point whose Hill tail index is ≤ 4 (heavy tail: its
            standard error is not trustworthy), ‡ one with Hill index ≤ 2.5 (a
            sample variance undershoots there).

            Files in --out: <figure>.csv (the table), <figure>_curve.csv (dense
            theory curves) and more per figure; with --json also <figure>.json
            with the parameters, a summary and every table as arrays of records.
            """
    )

    @Argument(help: "The figure to reproduce.")
    var figure: FigureName

    @Option(name: .long, help: ArgumentHelp("Folder for the CSV (and JSON) files.", valueName: "dir"))
    var out: String = "figures"

    @Flag(name: .long, help: "Also write <figure>.json files.")
    var json = false

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp(
        "Recorded SGD steps per chain for each simulated point (default 1000000, or 100000 with --quick).",
        valueName: "n"))
    var steps: Int?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Independent chains per simulated point.", valueName: "n"))
    var chains: Int = 8

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Random seed: the same seed gives the same numbers on any machine.",
                                            valueName: "n"))
    var seed: UInt64 = 1

    @Flag(name: .long, help: "Ten times fewer steps: a fast check with larger standard errors.")
    var quick = false

    @Flag(name: .long, help: "Draw the progress bar even when standard error is not a terminal.")
    var progress = false

    @Flag(name: .long, help: "Draw no progress bar.")
    var quiet = false

    func validate() throws {
        if let steps, steps < 1000 { throw ValidationError("--steps must be at least 1000, got \(steps)") }
        if chains < 1 || chains > 4096 { throw ValidationError("--chains must be between 1 and 4096, got \(chains)") }
        if progress && quiet { throw ValidationError("--progress and --quiet contradict each other") }
        if out.isEmpty { throw ValidationError("--out must name a folder") }
    }

    func run() throws {
        let context = RunContext(
            steps: steps ?? (quick ? 100_000 : 1_000_000), chains: chains, seed: seed,
            progress: quiet ? .never : (progress ? .always : .automatic), quick: quick)
        try makeDirectories(out)
        let start = monotonicSeconds()
        let chosen: [FigureName] = figure == .all ? [.fig4a, .fig4b, .fig4c, .fig3, .fig2] : [figure]
        var written: [String] = []
        for (index, name) in chosen.enumerated() {
            if index > 0 { print("") }
            let result: FigureResult
            switch name {
            case .fig4a: result = try figure4a(context)
            case .fig4b: result = try figure4Ellipse(context, name: "fig4b")
            case .fig4c: result = try figure4Ellipse(context, name: "fig4c")
            case .fig3: result = try figure3(context)
            case .fig2: result = try figure2(context)
            case .all: continue
            }
            written += try result.write(to: out, json: json, context: context)
        }
        print("")
        print("\(chosen.count == 1 ? "1 figure" : "\(chosen.count) figures") in \(fixed(monotonicSeconds() - start, 1)) s; "
            + "files in \(out): \(written.joined(separator: ", "))")
    }
}

/// How the figures are simulated.
struct RunContext {
    let steps: Int
    let chains: Int
    let seed: UInt64
    let progress: ProgressMode
    let quick: Bool

    /// "8 chains × 1,000,000 steps (after 100,000 burn-in) per point".
    var simulationSummary: String {
        "Monte-Carlo SGD: \(chains) chains × \(grouped(steps)) steps (after \(grouped(steps / 10)) burn-in) per point"
    }

    var json: JSON {
        .object([("steps_per_chain", .number(Double(steps))), ("burn_in", .number(Double(steps / 10))),
                 ("chains", .number(Double(chains))),
                 ("seed", seed < (1 << 53) ? .number(Double(seed)) : .string(String(seed)))])
    }

    /// The library's simulation budget for `figure`, drawing a progress bar labelled with the
    /// figure and the point.
    func simulation(_ figure: String) -> PaperFigures.Simulation {
        PaperFigures.Simulation(steps: steps, chains: chains, seed: seed) { [progress] spec, label in
            try simulateWithProgress(spec, label: "\(figure)  \(label)", mode: progress)
        }
    }
}

/// "1,000,000".
func grouped(_ n: Int) -> String {
    let digits = Array(String(n))
    var out = ""
    for (i, d) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(d)
    }
    return out
}

/// What one figure produced: files to write and a JSON summary.
struct FigureResult {
    let name: String
    let title: String
    let parameters: [(String, JSON)]
    var summary: [(String, JSON)] = []
    /// (file stem, frame), written as <stem>.csv.
    var frames: [(String, Frame)] = []

    /// Writes the CSV files (and the JSON file) into `folder`; returns the file names.
    func write(to folder: String, json: Bool, context: RunContext) throws -> [String] {
        var names: [String] = []
        for (stem, frame) in frames {
            try writeTextFile(joinPath(folder, stem + ".csv"), frame.csv)
            names.append(stem + ".csv")
        }
        if json {
            let document = JSON.object([
                ("figure", .string(name)), ("title", .string(title)), ("parameters", .object(parameters)),
                ("simulation", context.json), ("summary", .object(summary)),
                ("tables", .object(frames.map { ($0.0, $0.1.json) })),
            ])
            try writeTextFile(joinPath(folder, name + ".json"), document.render() + "\n")
            names.append(name + ".json")
        }
        return names
    }
}

/// Prints a figure's heading.
func printHeading(_ title: String) {
    print(title)
    print(String(repeating: "═", count: min(100, title.count)))
}

/// How far the simulator trusts a simulated second moment, from its Hill tail index.
enum TailMark {
    case none
    /// Hill index ≤ 4 (the simulator's `tailUnreliable`): the fourth moment may not exist, the
    /// standard error is not trustworthy.
    case heavy
    /// Hill index ≤ 2.5: the variance barely exists; a sample variance typically undershoots.
    case extreme

    init(_ result: SimulationResult?) {
        guard let result, !result.diverged, result.tailIndex.isFinite else { self = .none; return }
        self = result.tailIndex <= 2.5 ? .extreme : (result.tailUnreliable ? .heavy : .none)
    }

    var symbol: String {
        switch self {
        case .none: return " "
        case .heavy: return "†"
        case .extreme: return "‡"
        }
    }

    var flagged: Bool { self != .none }
}

/// The simulated value with † or ‡ when the simulator's tail estimate makes it unreliable.
func simulated(_ x: Double?, _ mark: TailMark) -> String {
    guard let x else { return "—" }
    return num(x) + mark.symbol
}
