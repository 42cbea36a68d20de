import Dispatch

/// A value handed to concurrently running workers that the caller guarantees they use safely
/// (disjoint writes through a pointer, read-only shared input).
struct UnsafeShared<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Runs `body(worker)` for `worker` in 0..<workers on the machine's cores and waits for all.
func parallelWorkers(_ workers: Int, _ body: @Sendable (Int) -> Void) {
    if workers <= 1 {
        body(0)
        return
    }
    DispatchQueue.concurrentPerform(iterations: workers, execute: body)
}
