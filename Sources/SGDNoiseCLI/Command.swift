import ArgumentParser
import SGDNoise

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The root command: `sgdnoise-cli <reproduce|predict|curve|stability>`.
struct SGDNoiseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sgdnoise-cli",
        abstract: "The noise and the fluctuation of SGD, exactly (Ziyin, Liu, Mori, Ueda, ICLR 2022).",
        discussion: """
            Subcommands:
              reproduce  the paper's figures: theory, approximations, simulation
              predict    the exact stationary fluctuation of one model
              curve      the exact learning curve of one model under a schedule
              stability  the critical learning rate over batch sizes and momenta

            Exit codes (the same mistake gives the same code whether a value came
            as an option or in a --spec file):
              0   success
              1   the library refused a well-formed value (e.g. a batch size
                  below 1, a negative learning rate or eigenvalue, a momentum
                  outside [0, 1), a matrix that is not symmetric) or failed
              2   no stationary distribution: the learning rate is at or past
                  the critical one (the message names it)
              64  usage or format error: unknown option or key, missing value,
                  a value of the wrong type (not a number, not an integer, not
                  a list), malformed JSON, an option the model does not use,
                  or a value outside the range of an option of the command
                  line itself (reproduce --steps, --chains; stability --dims)
              66  an input file cannot be opened or read
              73  an output file cannot be written
            Negative numbers are read as values (--batch-size -4, --lr -1) and
            checked like any other. Errors are one line on standard error.

            Theory: Ziyin, Liu, Mori, Ueda, "Strength of Minibatch Noise in SGD", ICLR 2022, \
            arXiv:2102.05375. Every formula the library computes, with its theorem number: \
            docs/theory.md in the source repository.
            """,
        version: SGDNoiseVersion.string,
        subcommands: [ReproduceCommand.self, PredictCommand.self, CurveCommand.self, StabilityCommand.self]
    )
}

/// Parses the command line, runs the command and exits with the documented status.
func runCommandLine() -> Never {
    do {
        var command = try SGDNoiseCommand.parseAsRoot()
        try command.run()
        exit(ExitStatus.success)
    } catch let error as SGDNoiseError {
        fail(describe(error), status: status(of: error))
    } catch let error as CLIError {
        fail(error.message, status: error.exitCode)
    } catch let code as ExitCode {
        exit(code.rawValue)
    } catch {
        let code = SGDNoiseCommand.exitCode(for: error)
        if code == .success { SGDNoiseCommand.exit(withError: error) }  // --help, --version
        // One line: the first line of the message, then any listed choices after it.
        let lines = SGDNoiseCommand.message(for: error).split(separator: "\n").map { $0.trimmingSpaces }
            .filter { !$0.isEmpty }
        var message = lines.first ?? "invalid command line"
        let rest = lines.dropFirst().map { $0.hasPrefix("- ") ? String($0.dropFirst(2)) : $0 }
        if !rest.isEmpty { message += " " + rest.joined(separator: ", ") }
        if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
        let sub = CommandLine.arguments.dropFirst().first { ["reproduce", "predict", "curve", "stability"].contains($0) }
        fail("\(message) (see 'sgdnoise-cli \(sub.map { $0 + " " } ?? "")--help')", status: ExitStatus.usage)
    }
}

/// Prints `sgdnoise-cli: error: <message>` on one line of standard error and exits.
func fail(_ message: String, status: Int32) -> Never {
    let oneLine = message.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).joined(separator: " ")
    writeStandardError("sgdnoise-cli: error: \(oneLine)\n")
    exit(status)
}

/// The message of a library error, with the critical learning rate when it is known.
func describe(_ error: SGDNoiseError) -> String {
    if case .unstable(let message, let critical) = error {
        if let critical, !message.contains("critical") {
            return "\(message) (critical learning rate \(num(critical, 8)))"
        }
        return message
    }
    return error.message
}

func status(of error: SGDNoiseError) -> Int32 {
    if case .unstable = error { return ExitStatus.unstable }
    return ExitStatus.failure
}

// MARK: - Parsing helpers shared by the subcommands

/// Parses "a,b,c" into numbers.
func parseNumberList(_ text: String, _ name: String) throws -> [Double] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
    guard !parts.isEmpty, !(parts.count == 1 && parts[0].isEmpty) else {
        throw CLIError.usage("\(name) is empty: give comma-separated numbers, e.g. 1,0.5")
    }
    return try parts.map { part in
        guard let x = Double(part), x.isFinite else {
            throw CLIError.usage("\(name): '\(part)' is not a finite number")
        }
        return x
    }
}

/// Parses "1,2,4" into integers (their range is for the library, or the caller, to check).
func parseIntegerList(_ text: String, _ name: String) throws -> [Int] {
    try parseNumberList(text, name).map { x in
        guard let k = exactInteger(x) else { throw CLIError.usage("\(name): '\(num(x))' is not an integer") }
        return k
    }
}

/// x as an integer when it is one (and small enough to be exact), nil otherwise.
func exactInteger(_ x: Double) -> Int? {
    x == x.rounded() && abs(x) < 1e15 ? Int(x) : nil
}

extension Substring {
    var trimmingSpaces: String {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}

/// A from --spectrum (its eigenvalues) or --matrix (a JSON file), nil when neither is given.
func symmetricOperator(spectrum: String?, matrix: String?) throws -> SymmetricOperator? {
    if spectrum != nil && matrix != nil { throw CLIError.usage("give either --spectrum or --matrix, not both") }
    if let spectrum { return .diagonal(try parseNumberList(spectrum, "--spectrum")) }
    if let matrix { return .dense(try readMatrixFile(matrix)) }
    return nil
}

/// Reads a matrix from a JSON file: an array of rows (`[[1, 0.2], [0.2, 0.5]]`) or an object with
/// one such array under "matrix".
func readMatrixFile(_ path: String) throws -> Matrix {
    let json = try JSON.parse(try readTextFile(path), source: path)
    return try parseMatrix(from: json["matrix"] ?? json, name: path)
}

/// A square matrix from a JSON array of rows.
func parseMatrix(from json: JSON, name: String) throws -> Matrix {
    guard case .array(let rows) = json, !rows.isEmpty else {
        throw CLIError.usage("\(name): expected a matrix as an array of rows, e.g. [[1, 0.2], [0.2, 0.5]]")
    }
    var values: [[Double]] = []
    for row in rows {
        guard case .array(let items) = row else {
            throw CLIError.usage("\(name): expected a matrix as an array of rows, e.g. [[1, 0.2], [0.2, 0.5]]")
        }
        values.append(try items.map { item in
            guard let x = item.doubleValue else { throw CLIError.usage("\(name): matrix entries must be numbers") }
            return x
        })
    }
    guard values.allSatisfy({ $0.count == values.count }) else {
        throw CLIError.usage("\(name): the matrix must be square (\(values.count) rows of \(values.count) numbers)")
    }
    return try Matrix(values)
}

/// A numeric array from JSON.
func numbers(from json: JSON, name: String) throws -> [Double] {
    if let x = json.doubleValue { return [x] }
    guard case .array(let items) = json else { throw CLIError.usage("\(name) must be a number or an array of numbers") }
    return try items.map { item in
        guard let x = item.doubleValue else { throw CLIError.usage("\(name) must be an array of numbers") }
        return x
    }
}
