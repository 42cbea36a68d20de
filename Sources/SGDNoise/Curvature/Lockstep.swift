/// A computation driven by a Lanczos recurrence that needs one Hessian-vector product per step:
/// a quadrature probe, or a Krylov g(H)z. `runInLockstep` advances several of them together.
protocol LockstepProbe {
    /// Whether it wants another step.
    var running: Bool { get }
    /// The vector whose product the next step takes (valid until that step).
    var current: UnsafePointer<Double> { get }
    /// One step with `product` = H · `current` / `outputScale`, taken with `apply(…, checked: false,
    /// scaled: false)`: the step checks it (`LanczosRecurrence.step(product:)` does, in its first
    /// pass over it) and applies the scale in its coefficients.
    mutating func step(product: UnsafePointer<Double>) throws
}

/// Runs every probe to its end, all in lockstep: at each round the current vectors of the probes
/// still running go to the operator as one block (calls of at most `hessian.blockSize` vectors),
/// and each probe takes its step with its row of the result. Since row r of a block product is the
/// product of row r alone (`HessianOperator.BlockProduct`), every probe sees exactly the numbers it
/// would see run alone: the results equal those of running the probes one after the other, to the
/// bit when the block product gives each row the bits of the single product. A single-vector
/// operator takes each probe's vector where it lies, and the probe steps right after its product
/// (no copy into a block).
///
/// Memory: two blocks of `probes.count` vectors of P doubles (one vector for a single-vector
/// operator), besides the probes' own.
func runInLockstep<Probe: LockstepProbe>(_ probes: inout [Probe], hessian: HessianOperator) throws {
    let p = hessian.dimension
    guard probes.contains(where: \.running) else { return }
    let single = hessian.blockSize == 1
    let input = single ? nil : try KrylovBasis(dimension: p, capacity: probes.count)
    let output = try KrylovBasis(dimension: p, capacity: single ? 1 : probes.count)
    while true {
        let active = probes.indices.filter { probes[$0].running }
        guard !active.isEmpty else { return }
        if single {
            for i in active {
                try hessian.apply(count: 1, probes[i].current, into: output.storage, checked: false, scaled: false)
                try probes[i].step(product: UnsafePointer(output.storage))
            }
            continue
        }
        for (r, i) in active.enumerated() { input!.vector(r).update(from: probes[i].current, count: p) }
        try hessian.apply(count: active.count, UnsafePointer(input!.storage), into: output.storage, checked: false,
                          scaled: false)
        for (r, i) in active.enumerated() { try probes[i].step(product: UnsafePointer(output.vector(r))) }
    }
}

/// The probes 0..<count in consecutive groups of at most `hessian.blockSize` (the probes one block
/// product serves): `body` gets each group's range, in order.
func forEachProbeGroup(count: Int, hessian: HessianOperator, _ body: (Range<Int>) throws -> Void) rethrows {
    var first = 0
    while first < count {
        let last = min(first + hessian.blockSize, count)
        try body(first..<last)
        first = last
    }
}
