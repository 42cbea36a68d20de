/// The records of a contiguous range of a simulation's chains (`simulateChains`), portable as
/// bytes (`StateEncoding`, kind 3; docs/state_format.md), so that the chains of one simulation can
/// run in several processes or on several machines and be combined (`combineChains`) into bit for
/// bit the result `simulate` gives in one process: chain c always draws from the stream c jumps
/// after the seed's, whoever runs it, and the combination pools the records in chain order.
///
/// A part carries a fingerprint of the simulation (XXH64 of its data, optimiser, steps, burn-in,
/// chain count and seed; not the thread count), and combining refuses parts of another simulation.
public struct SimulationChains: Sendable {
    /// The chains whose records this part holds.
    public let chains: Range<Int>
    /// The number of chains of the whole simulation.
    public let totalChains: Int
    /// Whether the run of this part was cancelled (its missing chains are then nil).
    public let cancelled: Bool
    let fingerprint: UInt64
    let dimension: Int
    /// One record per chain of `chains`, nil for a chain a cancellation or divergence left unstarted.
    let records: [ChainRecord?]

    init(chains: Range<Int>, spec: SimulationSpec, records: [ChainRecord?], cancelled: Bool) {
        self.chains = chains
        self.totalChains = spec.chains
        self.cancelled = cancelled
        self.fingerprint = Self.fingerprint(spec)
        self.dimension = spec.data.featureDimension
        self.records = records
    }

    /// XXH64 of a canonical encoding of everything in `spec` that the records depend on.
    static func fingerprint(_ spec: SimulationSpec) -> UInt64 {
        var w = StateWriter(capacity: 256)
        func matrix(_ m: Matrix?) {
            guard let m else { w.append(UInt64.max); return }
            w.append(m.rows)
            w.append(m.columns)
            w.append(m.elements)
        }
        func vector(_ v: [Double]?) {
            guard let v else { w.append(UInt64.max); return }
            w.append(v.count)
            w.append(v)
        }
        switch spec.data {
        case .gaussian(let a, let u, let noiseVariance, let inputNoise):
            w.append(UInt64(1))
            matrix(a)
            vector(u)
            w.append(noiseVariance)
            matrix(inputNoise)
        case .dataset(let x, let y, let sampling, let u):
            w.append(UInt64(2))
            matrix(x)
            vector(y)
            w.append(UInt64(sampling == .withReplacement ? 0 : sampling == .withoutReplacement ? 1 : 2))
            vector(u)
        }
        matrix(spec.weightDecay)
        switch spec.learningRate {
        case .scalar(let l):
            w.append(UInt64(1))
            w.append(l)
        case .diagonal(let values):
            w.append(UInt64(2))
            vector(values)
        case .matrix(let m):
            w.append(UInt64(3))
            matrix(m)
        }
        for n in [spec.batchSize, spec.steps, spec.burnIn, spec.chains] { w.append(n) }
        w.append(spec.momentum)
        w.append(spec.seed)
        return XXH64.hash(w.bytes)
    }

    // MARK: Bytes

    /// The part as bytes: fingerprint, D, total chains, first chain, chain count, cancelled; then
    /// per chain a presence flag and, when present, the recorded and noise step counts, Σe (D),
    /// Σeeᵀ (D²), Σηηᵀ (D²), the batch estimates (their number, then D² each), the tail series' length and its
    /// largest values (their number, then the values), and the divergence step (−1: none).
    public func serialized() -> [UInt8] {
        let d = dimension
        var words = 6
        for record in records {
            words += 1
            if let r = record { words += 2 + d + 2 * d * d + 1 + r.batchSigmas.count * d * d + 2 + r.tailLargest.count + 1 }
        }
        return StateEncoding.encode(.simulationChains, payloadWords: words) { w in
            w.append(fingerprint)
            w.append(d)
            w.append(totalChains)
            w.append(chains.lowerBound)
            w.append(chains.count)
            w.append(UInt64(cancelled ? 1 : 0))
            for record in records {
                guard let r = record else { w.append(UInt64(0)); continue }
                w.append(UInt64(1))
                w.append(r.count)
                w.append(r.noiseCount)
                w.append(r.sum)
                w.append(r.second)
                w.append(r.noiseSecond)
                w.append(r.batchSigmas.count)
                for b in r.batchSigmas { w.append(b) }
                w.append(r.tailCount)
                w.append(r.tailLargest.count)
                w.append(r.tailLargest)
                w.append(r.divergedAt ?? -1)
            }
        }
    }

    /// A part restored from `serialized()` bytes.
    /// - Throws: `invalidArgument` for a buffer that is not an intact part (envelope checks as for
    ///   every state; sizes that do not fit; a chain range outside the total).
    public init<C: Collection<UInt8>>(serialized bytes: C) throws {
        self = try StateEncoding.decode(bytes, as: .simulationChains) { r in try Self(reading: &r) }
    }

    /// A part restored from raw bytes (the C ABI's import).
    public init(serialized bytes: UnsafeRawBufferPointer) throws {
        self = try StateEncoding.decode(bytes, as: .simulationChains) { r in try Self(reading: &r) }
    }

    private init(reading r: inout StateReader) throws {
        let fingerprint = try r.word("fingerprint")
        let d = try r.count("dimension", in: 1...Validation.maxDenseDimension)
        let total = try r.count("number of chains", in: 1...Int(Int32.max))
        let first = try r.count("first chain", in: 0...(total - 1))
        let count = try r.count("chain count", in: 1...(total - first))
        let cancelled = try r.count("cancelled flag", in: 0...1) == 1
        let (square, overflow) = d.multipliedReportingOverflow(by: d)
        guard !overflow, r.remaining / 8 >= count else {
            throw SGDNoiseError.invalidArgument("the state's payload is too short for its chains: the buffer is corrupt")
        }
        var records: [ChainRecord?] = []
        for _ in 0..<count {
            guard try r.count("chain presence flag", in: 0...1) == 1 else {
                records.append(nil)
                continue
            }
            var record = ChainRecord(dimension: d)
            record.count = try r.count("recorded steps", in: 0...Int.max)
            record.noiseCount = try r.count("recorded noise steps", in: 0...Int.max)
            record.sum = try r.doubles(d, "sum")
            record.second = try r.doubles(square, "second moments")
            record.noiseSecond = try r.doubles(square, "noise moments")
            let batches = try r.count("number of batches", in: 0...(r.remaining / max(8 * square, 8)))
            record.batchSigmas = try (0..<batches).map { _ in try r.doubles(square, "batch estimates") }
            record.tailCount = try r.count("tail length", in: 0...Int.max)
            let kept = try r.count("number of tail values", in: 0...min(record.tailCount, r.remaining / 8))
            record.tailLargest = try r.doubles(kept, "tail values")
            let diverged = Int64(bitPattern: try r.word("divergence step"))
            guard diverged >= -1 else {
                throw SGDNoiseError.invalidArgument("the state's divergence step is out of range: the buffer is corrupt")
            }
            record.divergedAt = diverged < 0 ? nil : Int(diverged)
            records.append(record)
        }
        self.chains = first..<(first + count)
        self.totalChains = total
        self.cancelled = cancelled
        self.fingerprint = fingerprint
        self.dimension = d
        self.records = records
    }
}
