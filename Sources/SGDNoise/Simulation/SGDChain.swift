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
    /// The largest values of the thinned tail series |e| (what the Hill estimate reads), and the
    /// length of the series (its positive finite values).
    var tailLargest: [Double] = []
    var tailCount = 0
    var divergedAt: Int? = nil

    init(dimension d: Int) {
        sum = [Double](repeating: 0, count: d)
        second = [Double](repeating: 0, count: d * d)
        noiseSecond = [Double](repeating: 0, count: d * d)
    }
}

/// One SGD chain (docs/theory.md §1) on a prepared problem, with its own random stream.
///
/// A step has four named parts: the minibatch gradient (a `MinibatchGradient`, one per kind of
/// data), the weight decay, the momentum update (`ChainState`), and the bookkeeping of the
/// recorded steps (`ChainRecorder`). Everything the loop touches lives in a `ChainArena`, so the
/// loop runs without reference counting.
struct SGDChain {
    let problem: PreparedSimulation
    let burnIn: Int
    let steps: Int
    let batches: Int
    let tailStride: Int
    /// How many of the largest values of the tail series the chain keeps (≥ 1).
    let tailKept: Int

    /// Steps between two updates of the shared progress counter (and checks of the stop flag): a
    /// power of two.
    static let progressStride = 256

    /// Runs the chain; stops early when `control.stop` is set, and sets it on divergence.
    func run(rng: Xoshiro256StarStar, control: RunControl) -> ChainRecord {
        withGradient(StationaryLoop(chain: self, rng: rng, control: control))
    }

    /// A loop over the steps of a chain, run on the chain's kind of data and dimension
    /// (`withGradient`), so that the loop is specialised for each `MinibatchGradient` and, for
    /// the exact Gaussian gradient, for each small D (`ChainDimension`).
    protocol Body {
        associatedtype Output
        /// Runs the loop with `gradient` on vectors of `dimension.count` entries, on memory owned
        /// by `arena`.
        func run<Gradient: MinibatchGradient, Dimension: ChainDimension>(
            _ gradient: Gradient, dimension: Dimension, arena: ChainArena
        ) -> Output where Gradient.Vector == Dimension.Vector
    }

    /// The stationary loop of `run`.
    private struct StationaryLoop: Body {
        let chain: SGDChain
        let rng: Xoshiro256StarStar
        let control: RunControl

        func run<Gradient: MinibatchGradient, Dimension: ChainDimension>(
            _ gradient: Gradient, dimension: Dimension, arena: ChainArena
        ) -> ChainRecord where Gradient.Vector == Dimension.Vector {
            chain.loop(gradient, dimension: dimension, rng: rng, control: control, arena: arena)
        }
    }

    /// Builds the minibatch gradient of the problem's data in a fresh arena and runs `body` on it;
    /// online Gaussian data without input noise (the common case, where a step costs O(D)) run a
    /// loop specialised for D = 1…4.
    func withGradient<B: Body>(_ body: B) -> B.Output {
        let arena = ChainArena()
        return withExtendedLifetime(arena) {
            let d = problem.dimension, s = problem.batchSize
            let tables = Ziggurat.shared
            let dynamic = DynamicDimension(count: d)
            switch problem.source {
            case .gaussian(let sqrtA, let teacher, let labelNoise, nil):
                func run<Dimension: ChainDimension>(_ dimension: Dimension) -> B.Output {
                    let gradient = ExactGaussianGradient(
                        sqrtA: dimension.vector(sqrtA, arena), teacher: dimension.vector(teacher, arena),
                        labelNoise: labelNoise, batchSize: s, dimension: dimension, direction: dimension.zeros(arena),
                        normals: dimension.zeros(arena), tables: tables)
                    return body.run(gradient, dimension: dimension, arena: arena)
                }
                switch d {
                case 1: return run(FixedDimension1())
                case 2: return run(FixedDimension2())
                case 3: return run(FixedDimension3())
                case 4: return run(FixedDimension4())
                default: return run(dynamic)
                }
            case .gaussian(let sqrtA, let teacher, let labelNoise, let root?):
                let gradient = NoisyInputGradient(
                    sqrtA: arena.copy(sqrtA), teacher: arena.copy(teacher), labelNoise: labelNoise,
                    inputNoiseRoot: arena.view(root), batchSize: s, dimension: d, x: dynamic.zeros(arena),
                    normals: dynamic.zeros(arena), noise: dynamic.zeros(arena), tables: tables)
                return body.run(gradient, dimension: dynamic, arena: arena)
            case .dataset(let x, let y, let sampling):
                let gradient = DatasetGradient(
                    x: arena.copy(x.elements), y: arena.copy(y), rows: x.rows, sampling: sampling, batchSize: s,
                    dimension: d)
                return body.run(gradient, dimension: dynamic, arena: arena)
            }
        }
    }

    /// The SGD loop: burn-in, then recorded steps, until done, diverged or stopped.
    private func loop<Gradient: MinibatchGradient, Dimension: ChainDimension>(
        _ source: Gradient, dimension: Dimension, rng: Xoshiro256StarStar, control: RunControl, arena: ChainArena
    ) -> ChainRecord where Gradient.Vector == Dimension.Vector {
        var gradient = source
        var random = rng
        var state = ChainState(problem: problem, dimension: dimension, arena: arena)
        var recorder = ChainRecorder(
            dimension: dimension, batches: batches, perBatch: max(1, steps / batches), tailStride: tailStride,
            tailKept: tailKept, arena: arena)
        let invS = 1 / Double(problem.batchSize)
        // Steps completed: the progress counter gets progressStride (a power of two) after each
        // multiple of it, and the remainder at the end.
        var completed = burnIn + steps
        for t in 0..<(burnIn + steps) {
            // The minibatch gradient ĝ at w_{t−1}.
            state.clearGradient()
            gradient.accumulate(at: state.w, into: &state.g, random: &random)
            state.finishGradient(scale: invS)
            let recording = t >= burnIn
            if recording { recorder.stageNoise(&state) }
            let norm2 = state.momentumStep()
            if !(norm2 < 1e60) {
                recorder.record.divergedAt = t
                control.stop.store(true, ordering: .relaxed)
                completed = t
                break
            }
            if recording { recorder.recordStep(state.e, norm2: norm2) }
            if (t &+ 1) & (Self.progressStride - 1) == 0 {
                control.stepsDone.add(Self.progressStride, ordering: .relaxed)
                if control.stop.load(ordering: .relaxed) {
                    completed = t + 1
                    break
                }
            }
        }
        control.stepsDone.add(completed & (Self.progressStride - 1), ordering: .relaxed)
        return recorder.finish()
    }
}

// MARK: - Memory

/// The raw memory of one chain run: every array the inner loop reads or writes, copied once.
/// Freed with the arena; the chain keeps it alive across the loop (`withExtendedLifetime`).
final class ChainArena {
    private var blocks: [UnsafeMutablePointer<Double>] = []

    /// `n` zeros.
    func zeros(_ n: Int) -> UnsafeMutablePointer<Double> {
        let p = UnsafeMutablePointer<Double>.allocate(capacity: max(n, 1))
        p.initialize(repeating: 0, count: max(n, 1))
        blocks.append(p)
        return p
    }

    /// A copy of `values`.
    func copy(_ values: [Double]) -> UnsafeMutablePointer<Double> {
        let p = zeros(values.count)
        values.withUnsafeBufferPointer { if let base = $0.baseAddress { p.update(from: base, count: values.count) } }
        return p
    }

    /// A view of a copy of `op`'s entries.
    func view(_ op: SymmetricOperator) -> SymmetricOperator.UnsafeView {
        SymmetricOperator.UnsafeView(isDiagonal: op.isDiagonal, entries: UnsafePointer(copy(op.storedEntries)))
    }

    deinit {
        for p in blocks { p.deallocate() }
    }
}

// MARK: - The optimiser's state

/// w, the momentum buffer and the operators of the update, in the working basis.
struct ChainState<Dimension: ChainDimension> {
    typealias Vector = Dimension.Vector
    let dimension: Dimension
    var d: Int { dimension.count }
    let momentum: Double
    let learningRate: SymmetricOperator.UnsafeView
    /// Γ (nil: no weight decay).
    let weightDecay: SymmetricOperator.UnsafeView?
    /// K with ∇L(w) = K(w − w*).
    let curvature: SymmetricOperator.UnsafeView
    let wStar: Vector
    var w: Vector
    var m: Vector
    /// The minibatch gradient ĝ.
    var g: Vector
    /// e = w − w* after a step.
    var e: Vector
    var tmp: Vector

    init(problem: PreparedSimulation, dimension: Dimension, arena: ChainArena) {
        self.dimension = dimension
        momentum = problem.momentum
        learningRate = arena.view(problem.learningRate)
        weightDecay = problem.weightDecay.map(arena.view)
        curvature = arena.view(problem.curvature)
        wStar = dimension.vector(problem.wStarWorking, arena)
        w = dimension.vector(problem.wStarWorking, arena)
        m = dimension.zeros(arena)
        g = dimension.zeros(arena)
        e = dimension.zeros(arena)
        tmp = dimension.zeros(arena)
    }

    @inline(__always)
    mutating func clearGradient() {
        for i in 0..<d { g[i] = 0 }
    }

    /// ĝ ← ĝ/S + Γw.
    @inline(__always)
    mutating func finishGradient(scale invS: Double) {
        for i in 0..<d { g[i] *= invS }
        if let gamma = weightDecay {
            gamma.apply(w, into: &tmp, d)
            for i in 0..<d { g[i] += tmp[i] }
        }
    }

    /// η = ĝ − ∇L(w_{t−1}) = ĝ − K(w_{t−1} − w*) (in `tmp`: valid until the next update).
    @inline(__always)
    mutating func noise() -> Vector {
        for i in 0..<d { e[i] = w[i] - wStar[i] }
        curvature.apply(e, into: &tmp, d)
        for i in 0..<d { tmp[i] = g[i] - tmp[i] }
        return tmp
    }

    /// m_t = μ m_{t−1} + ĝ_t;  w_t = w_{t−1} − Λ m_t;  e = w_t − w*. Returns |e|².
    @inline(__always)
    mutating func momentumStep() -> Double { momentumStep(momentum: momentum, scale: 1) }

    /// m_t = μ m_{t−1} + ĝ_t;  w_t = w_{t−1} − c Λ m_t;  e = w_t − w* with μ = `momentum` and
    /// c = `scale` (a schedule's λ_t; c = 1 multiplies exactly). Returns |e|².
    @inline(__always)
    mutating func momentumStep(momentum: Double, scale: Double) -> Double {
        for i in 0..<d { m[i] = momentum * m[i] + g[i] }
        learningRate.apply(m, into: &tmp, d)
        var norm2 = 0.0
        for i in 0..<d {
            w[i] -= scale * tmp[i]
            let ei = w[i] - wStar[i]
            e[i] = ei
            norm2 += ei * ei
        }
        return norm2
    }
}

// MARK: - Recording

/// The statistics of the recorded steps: second moments of e and η in blocks, batch means for
/// the standard errors, and the largest values of the thinned tail series |e|.
struct ChainRecorder<Dimension: ChainDimension> {
    /// Rows of pending vectors per blocked update (`ChainDimension.pendingRows`).
    var block: Int { dimension.pendingRows }

    let dimension: Dimension
    var d: Int { dimension.count }
    let batches: Int
    let perBatch: Int
    let tailStride: Int
    var record: ChainRecord
    /// Σ e eᵀ over the completed batches, of the open batch, and Σ η ηᵀ (upper triangles).
    let second: UnsafeMutablePointer<Double>
    let batchSecond: UnsafeMutablePointer<Double>
    let noiseSecond: UnsafeMutablePointer<Double>
    /// Σ e over the open batch.
    let batchSum: UnsafeMutablePointer<Double>
    /// Pending e (for the batch's second moment) and η (for the noise), flushed by `flush`.
    let pendingE: UnsafeMutablePointer<Double>
    let pendingEta: UnsafeMutablePointer<Double>
    var pendingCount = 0
    var batchCount = 0
    var tailCountdown = 0
    var tail: LargestValues

    init(dimension: Dimension, batches: Int, perBatch: Int, tailStride: Int, tailKept: Int, arena: ChainArena) {
        self.dimension = dimension
        let d = dimension.count
        self.batches = batches
        self.perBatch = perBatch
        self.tailStride = tailStride
        record = ChainRecord(dimension: d)
        second = arena.zeros(d * d)
        batchSecond = arena.zeros(d * d)
        noiseSecond = arena.zeros(d * d)
        batchSum = arena.zeros(d)
        pendingE = arena.zeros(dimension.pendingRows * d)
        pendingEta = arena.zeros(dimension.pendingRows * d)
        tail = LargestValues(capacity: tailKept, arena: arena)
    }

    /// Stages this step's noise η (before the update moves w): with one pending row (a fixed D),
    /// η ηᵀ goes straight to the noise's second moment, the additions of a flush of that row.
    @inline(__always)
    mutating func stageNoise(_ state: inout ChainState<Dimension>) {
        let eta = state.noise()
        if block == 1 {
            Self.addOuterProduct(noiseSecond, eta, d)
        } else {
            let row = pendingEta + pendingCount * d
            for i in 0..<d { row[i] = eta[i] }
        }
        record.noiseCount &+= 1
    }

    /// Records e = w_t − w* (with |e|² = `norm2`): batch sums, pending rows (or, with one
    /// pending row, e eᵀ at once) and the tail series. The counters are bounded by the steps.
    @inline(__always)
    mutating func recordStep(_ e: Dimension.Vector, norm2: Double) {
        for i in 0..<d { batchSum[i] += e[i] }
        if block == 1 {
            Self.addOuterProduct(batchSecond, e, d)
        } else {
            let row = pendingE + pendingCount * d
            for i in 0..<d { row[i] = e[i] }
            pendingCount &+= 1
        }
        batchCount &+= 1
        if tailCountdown == 0 {
            tail.offer(squareRootOf: norm2)
            tailCountdown = tailStride
        }
        tailCountdown &-= 1
        let closing = batchCount == perBatch && record.batchSigmas.count < batches - 1
        if block > 1 && (pendingCount == block || closing) { flush() }
        if closing { closeBatch() }
    }

    /// Adds the pending rows to the second moments.
    @inline(__always)
    mutating func flush() {
        Self.rankK(batchSecond, pendingE, pendingCount, d)
        Self.rankK(noiseSecond, pendingEta, pendingCount, d)
        pendingCount = 0
    }

    /// Flushes, closes the last batch (unless the chain diverged) and returns the record.
    mutating func finish() -> ChainRecord {
        flush()
        if batchCount > 0 && record.divergedAt == nil { closeBatch() }
        record.second = Array(UnsafeBufferPointer(start: second, count: d * d))
        record.noiseSecond = Array(UnsafeBufferPointer(start: noiseSecond, count: d * d))
        record.tailLargest = tail.values
        record.tailCount = tail.offered
        return record
    }

    /// Adds e eᵀ to the upper triangle of `acc` (d × d): `rankK` of the one row e.
    @inline(__always)
    private static func addOuterProduct(_ acc: UnsafeMutablePointer<Double>, _ e: Dimension.Vector, _ d: Int) {
        for i in 0..<d {
            let row = acc + i * d
            let ei = e[i]
            for j in i..<d { row[j] += ei * e[j] }
        }
    }

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

    /// Stores the batch's Σ_b = S2/n − (S1/n)(S1/n)ᵀ and folds its sums into the totals.
    private mutating func closeBatch() {
        let n = Double(batchCount)
        var sigma = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in i..<d {
                let v = batchSecond[i * d + j] / n - (batchSum[i] / n) * (batchSum[j] / n)
                sigma[i * d + j] = v
                sigma[j * d + i] = v
                second[i * d + j] += batchSecond[i * d + j]
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

/// The largest positive finite values offered, in a binary min-heap of fixed capacity in arena
/// memory, and how many positive finite values were offered. The Hill estimate reads only the
/// k + 1 largest of the tail series (`TailSamples.hillIndex(largest:sampleCount:)`), so the series
/// itself is neither stored nor sorted. Values are offered as squares q (|e|² for |e|): once the
/// heap is full, a value not above its minimum m (almost every one) costs one comparison of q with
/// the largest q′ whose square root is ≤ m (`entryBound`), and no square root.
struct LargestValues {
    let capacity: Int
    let heap: UnsafeMutablePointer<Double>
    var count = 0
    var offered = 0
    /// Once the heap is full: the largest q with √q ≤ heap[0] (√ is monotone, so √q > heap[0]
    /// exactly when q > entryBound).
    private var entryBound = 0.0

    init(capacity: Int, arena: ChainArena) {
        self.capacity = max(capacity, 1)
        heap = arena.zeros(self.capacity)
    }

    /// Offers √q (nothing unless √q is positive and finite, i.e. 0 < q < ∞).
    @inline(__always)
    mutating func offer(squareRootOf q: Double) {
        guard q > 0 && q < .infinity else { return }
        offered &+= 1
        if count < capacity || q > entryBound { insert(q.squareRoot()) }
    }

    /// The largest q with √q ≤ m (m ≥ 0 finite): near m², found by stepping through the doubles.
    private static func largestSquare(withRootAtMost m: Double) -> Double {
        var q = m * m
        while q.squareRoot() > m { q = q.nextDown }
        while q.nextUp.squareRoot() <= m { q = q.nextUp }
        return q
    }

    /// Adds `v`, or puts it in place of the minimum when the heap is full.
    @inline(never)
    private mutating func insert(_ v: Double) {
        if count < capacity {
            var i = count
            count += 1
            while i > 0 {
                let parent = (i - 1) / 2
                if heap[parent] <= v { break }
                heap[i] = heap[parent]
                i = parent
            }
            heap[i] = v
            if count == capacity { entryBound = Self.largestSquare(withRootAtMost: heap[0]) }
            return
        }
        var i = 0
        while true {
            var child = 2 * i + 1
            if child >= count { break }
            if child + 1 < count && heap[child + 1] < heap[child] { child += 1 }
            if v <= heap[child] { break }
            heap[i] = heap[child]
            i = child
        }
        heap[i] = v
        entryBound = Self.largestSquare(withRootAtMost: heap[0])
    }

    /// The values kept (in heap order).
    var values: [Double] { Array(UnsafeBufferPointer(start: heap, count: count)) }
}
