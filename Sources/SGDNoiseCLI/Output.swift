#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Errors of the command-line layer

/// A failure of the command-line layer (files, values the library never sees), with its exit code.
struct CLIError: Error, CustomStringConvertible {
    let message: String
    let exitCode: Int32

    /// A usage or format error, on the command line or in a JSON file alike (exit 64): unknown
    /// option or key, missing value, a value of the wrong type, malformed JSON, a value outside
    /// the range of an option of the command line itself.
    static func usage(_ message: String) -> CLIError { CLIError(message: message, exitCode: ExitStatus.usage) }
    /// An input file that cannot be opened or read (exit 66).
    static func unreadable(_ message: String) -> CLIError { CLIError(message: message, exitCode: ExitStatus.noInput) }
    /// An output file that cannot be written (exit 73).
    static func output(_ message: String) -> CLIError { CLIError(message: message, exitCode: ExitStatus.cannotCreate) }

    var description: String { message }
}

/// The exit codes of `sgdnoise-cli` (documented in the root command's help).
enum ExitStatus {
    static let success: Int32 = 0
    /// The library refused a well-formed value or failed (invalid value, not symmetric, not
    /// positive definite, numerical failure, out of memory), whatever route the value took.
    static let failure: Int32 = 1
    /// No stationary distribution: the learning rate is at or past its critical value.
    static let unstable: Int32 = 2
    /// Usage or format error: unknown option or key, missing value, a value of the wrong type or
    /// malformed JSON (EX_USAGE).
    static let usage: Int32 = 64
    /// An input file cannot be opened or read (EX_NOINPUT).
    static let noInput: Int32 = 66
    /// An output file or folder cannot be created (EX_CANTCREAT).
    static let cannotCreate: Int32 = 73
}

// MARK: - Standard streams

/// Writes `text` to standard error, unbuffered.
func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = write(2, raw.baseAddress! + offset, raw.count - offset)
            if n <= 0 { return }
            offset += n
        }
    }
}

/// Whether standard error is a terminal (progress bars are drawn only then, unless forced).
var standardErrorIsTerminal: Bool { isatty(2) == 1 }

// MARK: - Number formatting (printf semantics without Foundation)

/// `printf`-style formatting of one value.
func cformat(_ format: String, _ args: CVarArg...) -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    let count = withVaList(args) { list in
        buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, $0.count, format, list) }
    }
    let length = max(0, min(Int(count), buffer.count - 1))
    return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A number with `digits` significant digits ("inf", "nan" spelled out; "—" for nil).
func num(_ x: Double?, _ digits: Int = 5) -> String {
    guard let x else { return "—" }
    if x.isNaN { return "nan" }
    if x.isInfinite { return x > 0 ? "∞" : "−∞" }
    return cformat("%.\(digits)g", x)
}

/// A number with a fixed number of decimals.
func fixed(_ x: Double?, _ decimals: Int = 3) -> String {
    guard let x, x.isFinite else { return num(x) }
    return cformat("%.\(decimals)f", x)
}

/// A signed relative error in percent ("—" when undefined).
func percent(_ x: Double?) -> String {
    guard let x, x.isFinite else { return "—" }
    if abs(x) >= 10 { return cformat("%+.0f%%", 100 * x) }
    return cformat("%+.1f%%", 100 * x)
}

/// (approximation − reference) / reference, nil when undefined.
func relativeError(_ value: Double, _ reference: Double) -> Double? {
    guard value.isFinite, reference.isFinite, reference != 0 else { return nil }
    return (value - reference) / reference
}

/// A comma-separated list of numbers.
func list(_ xs: [Double], _ digits: Int = 5, limit: Int = 8) -> String {
    let shown = xs.prefix(limit).map { num($0, digits) }.joined(separator: ", ")
    return xs.count > limit ? "[\(shown), … (\(xs.count) entries)]" : "[\(shown)]"
}

// MARK: - Aligned text tables

/// A table printed with aligned columns: the leading `leftColumns` left-aligned, the others right-aligned.
struct TextTable {
    var headers: [String]
    var rows: [[String]] = []
    /// How many leading columns are left-aligned.
    var leftColumns = 1

    init(_ headers: [String], leftColumns: Int = 1) {
        self.headers = headers
        self.leftColumns = leftColumns
    }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render(indent: String = "  ") -> String {
        let all = [headers] + rows
        var widths = [Int](repeating: 0, count: headers.count)
        for row in all { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ row: [String]) -> String {
            var parts: [String] = []
            for (i, cell) in row.enumerated() where i < widths.count {
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                parts.append(i < leftColumns ? cell + pad : pad + cell)
            }
            var text = indent + parts.joined(separator: "  ")
            while text.hasSuffix(" ") { text.removeLast() }
            return text
        }
        let rule = indent + widths.map { String(repeating: "─", count: $0) }.joined(separator: "  ")
        return ([line(headers), rule] + rows.map(line)).joined(separator: "\n")
    }
}

// MARK: - Data frames (CSV and JSON output)

/// One cell of a data frame.
enum Cell {
    case number(Double?)
    case integer(Int)
    case text(String)
    case flag(Bool)

    var csv: String {
        switch self {
        case .number(let x):
            guard let x, x.isFinite else { return x.map { $0.isNaN ? "nan" : ($0 > 0 ? "inf" : "-inf") } ?? "" }
            return "\(x)"
        case .integer(let n): return "\(n)"
        case .text(let s): return s.contains(",") || s.contains("\"") ? "\"" + s.replacingAll("\"", "\"\"") + "\"" : s
        case .flag(let b): return b ? "true" : "false"
        }
    }

    var json: JSON {
        switch self {
        case .number(let x): return x.map(JSON.number) ?? .null
        case .integer(let n): return .number(Double(n))
        case .text(let s): return .string(s)
        case .flag(let b): return .bool(b)
        }
    }
}

/// A table of named columns, written as CSV and as a JSON array of records.
struct Frame {
    let columns: [String]
    var rows: [[Cell]] = []

    init(_ columns: [String]) { self.columns = columns }

    mutating func add(_ row: [Cell]) {
        precondition(row.count == columns.count, "frame row has \(row.count) cells for \(columns.count) columns")
        rows.append(row)
    }

    var csv: String {
        ([columns.joined(separator: ",")] + rows.map { $0.map(\.csv).joined(separator: ",") }).joined(separator: "\n") + "\n"
    }

    var json: JSON {
        .array(rows.map { row in .object(zip(columns, row).map { ($0, $1.json) }) })
    }
}

extension String {
    /// Every occurrence of `target` replaced (no Foundation).
    func replacingAll(_ target: String, _ replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let range = rest.range(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}

extension Substring {
    /// The first range of `target` (no Foundation).
    func range(of target: String) -> Range<Index>? {
        let t = Array(target)
        guard !t.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            var j = i
            var k = 0
            while k < t.count, j < endIndex, self[j] == t[k] {
                j = index(after: j)
                k += 1
            }
            if k == t.count { return i..<j }
            i = index(after: i)
        }
        return nil
    }
}

// MARK: - Files

/// Creates `path` and its missing parents (like `mkdir -p`).
func makeDirectories(_ path: String) throws {
    var current = path.hasPrefix("/") ? "/" : ""
    for component in path.split(separator: "/") {
        current += (current.isEmpty || current.hasSuffix("/") ? "" : "/") + component
        var info = stat()
        if stat(current, &info) == 0 {
            if (info.st_mode & S_IFMT) != S_IFDIR { throw CLIError.output("cannot create folder \(path): \(current) is a file") }
            continue
        }
        if mkdir(current, 0o755) != 0 && errno != EEXIST {
            throw CLIError.output("cannot create folder \(current): \(String(cString: strerror(errno)))")
        }
    }
}

/// Writes `text` to `path` (replacing it).
func writeTextFile(_ path: String, _ text: String) throws {
    guard let file = fopen(path, "w") else {
        throw CLIError.output("cannot write \(path): \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    let bytes = Array(text.utf8)
    if !bytes.isEmpty && fwrite(bytes, 1, bytes.count, file) != bytes.count {
        throw CLIError.output("cannot write \(path): \(String(cString: strerror(errno)))")
    }
}

/// The contents of the UTF-8 text file at `path`.
func readTextFile(_ path: String) throws -> String {
    guard let file = fopen(path, "r") else {
        throw CLIError.unreadable("cannot read \(path): \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, file)
        if n > 0 { bytes += chunk[0..<n] }
        if n < chunk.count { break }
    }
    if ferror(file) != 0 { throw CLIError.unreadable("cannot read \(path)") }
    return String(decoding: bytes, as: UTF8.self)
}

/// `folder/name`.
func joinPath(_ folder: String, _ name: String) -> String {
    folder.hasSuffix("/") ? folder + name : folder + "/" + name
}
