import SGDNoise

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// When to draw the progress bar of simulations on standard error.
enum ProgressMode {
    /// Only when standard error is a terminal.
    case automatic
    case always
    case never

    var enabled: Bool {
        switch self {
        case .automatic: return standardErrorIsTerminal
        case .always: return true
        case .never: return false
        }
    }
}

/// Seconds on a monotonic clock.
func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// A one-line progress bar on standard error, redrawn in place with a carriage return:
///
///     fig4a λ = 0.50 (5/15)  [##########··········]  50%  2.4e+07 steps/s
final class ProgressBar {
    private let label: String
    private let enabled: Bool
    private let start = monotonicSeconds()
    private var lastWidth = 0

    init(_ label: String, mode: ProgressMode) {
        self.label = label
        self.enabled = mode.enabled
    }

    /// The callback for `simulate(_:progress:)`: draws and never cancels.
    func update(done: Int, total: Int) -> Bool {
        guard enabled, total > 0 else { return false }
        let fraction = min(1, Double(done) / Double(total))
        let width = 24
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: "·", count: width - filled)
        let elapsed = monotonicSeconds() - start
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let line = "\(label)  [\(bar)] \(cformat("%3.0f", 100 * fraction))%  \(cformat("%.1e", rate)) steps/s"
        let pad = String(repeating: " ", count: max(0, lastWidth - line.count))
        lastWidth = line.count
        writeStandardError("\r" + line + pad)
        return false
    }

    /// Erases the bar.
    func finish() {
        guard enabled, lastWidth > 0 else { return }
        writeStandardError("\r" + String(repeating: " ", count: lastWidth) + "\r")
        lastWidth = 0
    }
}

/// Runs a simulation with a progress bar labelled `label`.
func simulateWithProgress(_ spec: SimulationSpec, label: String, mode: ProgressMode) throws -> SimulationResult {
    let bar = ProgressBar(label, mode: mode)
    defer { bar.finish() }
    return try simulate(spec) { done, total in bar.update(done: done, total: total) }
}
