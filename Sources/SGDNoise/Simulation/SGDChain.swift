import Synchronization

/// Shared state of a running simulation: progress counter, cancellation and divergence flags.
final class RunControl: Sendable {
    let stepsDone = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
}

/// What one chain accumulated (working basis).
struct ChainRecord: Sendable {
    var count = 0
    var sum: [Double]
    /// Upper triangle of Σ e eᵀ (full d × d storage).
    var second: [Double]
    var noiseCount = 0
    var noiseSecond: [Double]
    /// Σ_b of each completed batch (full symmetric d × d).
    var batchSigmas: [[Double]] = []
    var tail: [Double] = []
    var divergedAt: Int? = nil

    init(dimension d: Int) {
        sum = [Double](repeating: 0, count: d)
        second = [Double](repeating: 0, count: d * d)
        noiseSecond = [Double](repeating: 0, count: d * d)
    }
}

/// One SGD chain (docs/theory.md §1) on a prepared problem, with its own random stream.
struct SGDChain {
    let problem: PreparedSimulation
    let burnIn: Int
    let steps: Int
    let batches: Int
    let tailStride: Int

    /// Rows of pending vectors per blocked update: each accumulator row is then read and written
    /// once per `block` steps instead of every step (the D² accumulators stop being memory-bound).
    static let block = 16

    /// Adds Σ_k e_k e_kᵀ over the `count` rows of `rows` (each d long) to the upper triangle of `acc`.
    @inline(__always)
    private static func rankK(_ acc: UnsafeMutablePointer<Double>, _ rows: UnsafePointer<Double>, _ count: Int, _ d: Int) {
        for i in 0..<d {
            let row = acc + i * d
            for k in 0..<count {
                let e = rows + k * d
                let ei = e[i]
                for j in i..<d { row[j] += ei * e[j] }
            }
        }
    }

    /// Runs the chain; stops early when `control.stop` is set, and sets it on divergence.
    func run(rng: Xoshiro256StarStar, control: RunControl) -> ChainRecord {
        let d = problem.dimension
        let s = problem.batchSize
        var random = rng
        var record = ChainRecord(dimension: d)
        // Everything the inner loop touches, as raw memory owned by this call (no ARC in the loop).
        let tables = Ziggurat.shared
        let zk = UnsafeMutablePointer<UInt64>.allocate(capacity: 256)
        tables.k.withUnsafeBufferPointer { zk.initialize(from: $0.baseAddress!, count: 256) }
        let zw = FastOperator.copy(tables.w), zf = FastOperator.copy(tables.f)
        let buffers = UnsafeMutablePointer<Double>.allocate(capacity: 9 * d)
        buffers.initialize(repeating: 0, count: 9 * d)
        let pendingRows = UnsafeMutablePointer<Double>.allocate(capacity: 2 * Self.block * d)
        let matrices = UnsafeMutablePointer<Double>.allocate(capacity: 3 * d * d)
        matrices.initialize(repeating: 0, count: 3 * d * d)
        let lr = FastOperator(problem.learningRate), gamma = FastOperator(problem.weightDecay)
        let curvature = FastOperator(problem.curvature)
        let ws = FastOperator.copy(problem.wStarWorking)
        var sqrtA: UnsafeMutablePointer<Double>? = nil, teacher: UnsafeMutablePointer<Double>? = nil
        var root: FastOperator? = nil
        var labelNoise = 0.0
        var xData: UnsafeMutablePointer<Double>? = nil, yData: UnsafeMutablePointer<Double>? = nil
        var rows = 0
        var sampling = BatchSampling.withReplacement
        switch problem.source {
        case .gaussian(let sa, let u, let sigma, let r):
            sqrtA = FastOperator.copy(sa)
            teacher = FastOperator.copy(u)
            labelNoise = sigma
            root = r.map(FastOperator.init)
        case .dataset(let xs, let ys, let mode):
            xData = FastOperator.copy(xs.elements)
            yData = FastOperator.copy(ys)
            rows = xs.rows
            sampling = mode
        }
        defer {
            zk.deallocate(); zw.deallocate(); zf.deallocate(); buffers.deallocate(); matrices.deallocate()
            pendingRows.deallocate()
            lr.free(); gamma.free(); curvature.free(); ws.deallocate(); root?.free()
            sqrtA?.deallocate(); teacher?.deallocate(); xData?.deallocate(); yData?.deallocate()
        }
        let w = buffers, m = buffers + d, g = buffers + 2 * d, e = buffers + 3 * d, tmp = buffers + 4 * d
        let x = buffers + 5 * d, normals = buffers + 6 * d, batchSum = buffers + 7 * d
        let secondP = matrices, noiseP = matrices + d * d, batchP = matrices + 2 * d * d
        // Pending e (for the batch's second moment) and η (for the noise), flushed by `rankK`.
        let pendingE = pendingRows, pendingEta = pendingRows + Self.block * d
        var pendingCount = 0
        var tailCountdown = 0
        for i in 0..<d { w[i] = ws[i] }
        var batchCount = 0
        let perBatch = max(1, steps / batches)
        var permutation: [Int] = sampling == .withReplacement ? [] : Array(0..<max(rows, 0))
        var position = sampling == .epochShuffling ? rows : 0  // shuffle before the first batch
        let invS = 1 / Double(s)
        let mu = problem.momentum
        let total = burnIn + steps
        var pending = 0
        for t in 0..<total {
            // The minibatch gradient ĝ at w_{t−1}.
            for i in 0..<d { g[i] = 0 }
            if let sa = sqrtA, let u = teacher, root == nil {
                // Σ_i x_i(x_iᵀw − y_i) sampled exactly in law with D + O(1) variates instead of S·D
                // normals: in A's eigenbasis x_i = √a ⊙ z_i; with v = √a ⊙ (w − u), z_i = α_i v̂ + z⊥_i
                // and c_i = α_i|v| − ε_i, the sum is √a ⊙ (v̂ Σα_i c_i + (Σc_i²)^{1/2} ζ⊥) with
                // ζ⊥ ~ N(0, I − v̂v̂ᵀ) independent of (α, ε).
                var norm2v = 0.0
                for i in 0..<d {
                    let vi = sa[i] * (w[i] - u[i])
                    x[i] = vi
                    norm2v += vi * vi
                }
                let normV = norm2v.squareRoot()
                if normV > 0 {
                    let inv = 1 / normV
                    for i in 0..<d { x[i] *= inv }
                } else {
                    for i in 0..<d { x[i] = i == 0 ? 1 : 0 }
                }
                // (Σα_i², Σα_iε_i/σ, Σε_i²/σ²) is Wishart(S, I₂): Bartlett's decomposition gives it
                // from χ²_S, χ²_{S−1} and one normal, whatever S.
                let w11 = random.chiSquare(s, zk, zw, zf)
                let l11 = w11.squareRoot()
                let n21 = random.normal(zk, zw, zf)
                let w12 = l11 * n21
                let w22 = n21 * n21 + random.chiSquare(s - 1, zk, zw, zf)
                let sumAC = normV * w11 - labelNoise * w12
                let sumC2 = max(0, normV * normV * w11 - 2 * normV * labelNoise * w12 + labelNoise * labelNoise * w22)
                var projection = 0.0
                for i in 0..<d {
                    let z = random.normal(zk, zw, zf)
                    normals[i] = z
                    projection += z * x[i]
                }
                let scale = sumC2.squareRoot()
                for i in 0..<d {
                    g[i] = sa[i] * (x[i] * sumAC + scale * (normals[i] - projection * x[i]))
                }
            } else if let sa = sqrtA, let u = teacher, let root {
                // With input noise x̃ = x + ξ, ξ ~ N(0, B): sample by sample.
                for _ in 0..<s {
                    var y = 0.0
                    for i in 0..<d {
                        let xi = sa[i] * random.normal(zk, zw, zf)
                        x[i] = xi
                        y += u[i] * xi
                    }
                    if labelNoise > 0 { y += labelNoise * random.normal(zk, zw, zf) }
                    for i in 0..<d { normals[i] = random.normal(zk, zw, zf) }
                    root.apply(normals, into: tmp, d)
                    for i in 0..<d { x[i] += tmp[i] }
                    var r = -y
                    for i in 0..<d { r += x[i] * w[i] }
                    for i in 0..<d { g[i] += r * x[i] }
                }
            } else if let xb = xData, let yb = yData {
                for j in 0..<s {
                    let row: Int
                    switch sampling {
                    case .withReplacement:
                        row = random.index(below: rows)
                    case .withoutReplacement:
                        let k = j + random.index(below: rows - j)
                        permutation.swapAt(j, k)
                        row = permutation[j]
                    case .epochShuffling:
                        if position == rows {
                            for k in stride(from: rows - 1, to: 0, by: -1) {
                                permutation.swapAt(k, random.index(below: k + 1))
                            }
                            position = 0
                        }
                        row = permutation[position]
                        position += 1
                    }
                    let xr = xb + row * d
                    var r = -yb[row]
                    for i in 0..<d { r += xr[i] * w[i] }
                    for i in 0..<d { g[i] += r * xr[i] }
                }
            }
            for i in 0..<d { g[i] *= invS }
            if !gamma.isZero {
                gamma.apply(w, into: tmp, d)
                for i in 0..<d { g[i] += tmp[i] }
            }
            let recording = t >= burnIn
            if recording {
                // η = ĝ − ∇L(w_{t−1}) = ĝ − K(w_{t−1} − w*).
                for i in 0..<d { e[i] = w[i] - ws[i] }
                curvature.apply(e, into: tmp, d)
                let etaRow = pendingEta + pendingCount * d
                for i in 0..<d { etaRow[i] = g[i] - tmp[i] }
                record.noiseCount += 1
            }
            // m_t = μ m_{t−1} + ĝ_t;  w_t = w_{t−1} − Λ m_t.
            for i in 0..<d { m[i] = mu * m[i] + g[i] }
            lr.apply(m, into: tmp, d)
            var norm2 = 0.0
            for i in 0..<d {
                w[i] -= tmp[i]
                let ei = w[i] - ws[i]
                e[i] = ei
                norm2 += ei * ei
            }
            if !(norm2 < 1e60) {
                record.divergedAt = t
                control.stop.store(true, ordering: .relaxed)
                break
            }
            if recording {
                let eRow = pendingE + pendingCount * d
                for i in 0..<d {
                    batchSum[i] += e[i]
                    eRow[i] = e[i]
                }
                pendingCount += 1
                batchCount += 1
                if tailCountdown == 0 {
                    record.tail.append(norm2.squareRoot())
                    tailCountdown = tailStride
                }
                tailCountdown -= 1
                let closing = batchCount == perBatch && record.batchSigmas.count < batches - 1
                if pendingCount == Self.block || closing {
                    Self.rankK(batchP, pendingE, pendingCount, d)
                    Self.rankK(noiseP, pendingEta, pendingCount, d)
                    pendingCount = 0
                }
                if closing { Self.closeBatch(&record, batchSum, batchP, &batchCount, d, secondP) }
            }
            pending += 1
            if pending == 256 {
                control.stepsDone.add(pending, ordering: .relaxed)
                pending = 0
                if control.stop.load(ordering: .relaxed) { break }
            }
        }
        Self.rankK(batchP, pendingE, pendingCount, d)
        Self.rankK(noiseP, pendingEta, pendingCount, d)
        if batchCount > 0 && record.divergedAt == nil {
            Self.closeBatch(&record, batchSum, batchP, &batchCount, d, secondP)
        }
        record.second = Array(UnsafeBufferPointer(start: secondP, count: d * d))
        record.noiseSecond = Array(UnsafeBufferPointer(start: noiseP, count: d * d))
        control.stepsDone.add(pending, ordering: .relaxed)
        return record
    }

    /// Stores the batch's Σ_b = S2/n − (S1/n)(S1/n)ᵀ and folds its sums into the totals.
    private static func closeBatch(
        _ record: inout ChainRecord, _ batchSum: UnsafeMutablePointer<Double>, _ batchSecond: UnsafeMutablePointer<Double>,
        _ batchCount: inout Int, _ d: Int, _ totalSecond: UnsafeMutablePointer<Double>
    ) {
        let n = Double(batchCount)
        var sigma = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in i..<d {
                let v = batchSecond[i * d + j] / n - (batchSum[i] / n) * (batchSum[j] / n)
                sigma[i * d + j] = v
                sigma[j * d + i] = v
                totalSecond[i * d + j] += batchSecond[i * d + j]
                batchSecond[i * d + j] = 0
            }
        }
        for i in 0..<d {
            record.sum[i] += batchSum[i]
            batchSum[i] = 0
        }
        record.count += batchCount
        record.batchSigmas.append(sigma)
        batchCount = 0
    }
}
