/// The sum over one minibatch of the per-sample gradients x_i(x_iᵀw − y_i) of ½(wᵀx − y)², for
/// one kind of data (the chain divides by S and adds the weight decay).
protocol MinibatchGradient {
    /// The chain's vectors this gradient reads and writes (`ChainVector`).
    associatedtype Vector: ChainVector
    /// S, the number of per-sample gradients summed (a schedule changes it between steps).
    var batchSize: Int { get set }
    /// Adds the minibatch's sum of per-sample gradients at `w` to `g` (which holds zeros).
    mutating func accumulate(at w: Vector, into g: inout Vector, random: inout Xoshiro256StarStar)
}

/// Online Gaussian data without input noise, in A's eigenbasis, sampled exactly in law with
/// D + O(1) variates instead of S·D normals.
///
/// In A's eigenbasis x_i = √a ⊙ z_i; with v = √a ⊙ (w − u), z_i = α_i v̂ + z⊥_i and
/// c_i = α_i|v| − ε_i, the sum is √a ⊙ (v̂ Σα_i c_i + (Σc_i²)^{1/2} ζ⊥) with ζ⊥ ~ N(0, I − v̂v̂ᵀ)
/// independent of (α, ε). (Σα_i², Σα_iε_i/σ, Σε_i²/σ²) is Wishart(S, I₂): Bartlett's
/// decomposition gives it from χ²_S, χ²_{S−1} and one normal, whatever S.
struct ExactGaussianGradient<Dimension: ChainDimension>: MinibatchGradient {
    typealias Vector = Dimension.Vector
    /// √a_i, the teacher and σ in the working basis.
    let sqrtA: Vector
    let teacher: Vector
    let labelNoise: Double
    var batchSize: Int {
        didSet { if batchSize != oldValue { (chiS, chiSMinus1) = Self.samplers(batchSize) } }
    }
    let dimension: Dimension
    /// Scratch: v̂ and the D normals.
    let direction: Vector
    let normals: Vector
    let tables: Ziggurat
    /// χ²_S and χ²_{S−1} for the current batch size.
    private var chiS: ChiSquareSampler
    private var chiSMinus1: ChiSquareSampler

    init(sqrtA: Vector, teacher: Vector, labelNoise: Double, batchSize: Int, dimension: Dimension,
         direction: Vector, normals: Vector, tables: Ziggurat) {
        self.sqrtA = sqrtA
        self.teacher = teacher
        self.labelNoise = labelNoise
        self.batchSize = batchSize
        self.dimension = dimension
        self.direction = direction
        self.normals = normals
        self.tables = tables
        (chiS, chiSMinus1) = Self.samplers(batchSize)
    }

    private static func samplers(_ s: Int) -> (ChiSquareSampler, ChiSquareSampler) {
        (ChiSquareSampler(degreesOfFreedom: s), ChiSquareSampler(degreesOfFreedom: s - 1))
    }

    @inline(__always)
    func accumulate(at w: Vector, into g: inout Vector, random: inout Xoshiro256StarStar) {
        // A copy of a scratch vector is scratch: a fresh value, or the same arena memory.
        var x = direction, normals = normals
        let d = dimension.count, sa = sqrtA, u = teacher
        let tables = tables, labelNoise = labelNoise
        // The variates first, in the order of the stream (they do not depend on w).
        let w11 = chiS.sample(&random, tables)
        let n21 = random.normal(tables)
        let chiSMinus1 = chiSMinus1.sample(&random, tables)
        for i in 0..<d { normals[i] = random.normal(tables) }
        let l11 = w11.squareRoot()
        let w12 = l11 * n21
        let w22 = n21 * n21 + chiSMinus1
        var norm2v = 0.0
        for i in 0..<d {
            let vi = sa[i] * (w[i] - u[i])
            x[i] = vi
            norm2v += vi * vi
        }
        let normV = norm2v.squareRoot()
        if norm2v > 0 {  // as |v| > 0, without waiting for the square root
            let inv = 1 / normV
            for i in 0..<d { x[i] *= inv }
        } else {
            for i in 0..<d { x[i] = i == 0 ? 1 : 0 }
        }
        let sumAC = normV * w11 - labelNoise * w12
        // 2|v|σ as |v|·(2σ): both round the exact 2|v|σ (doubling is exact: |v| ≤ √Double.max, σ
        // finite), one product fewer between the two square roots of a step.
        let sumC2 = max(0, normV * normV * w11 - normV * (2 * labelNoise) * w12 + labelNoise * labelNoise * w22)
        var projection = 0.0
        for i in 0..<d { projection += normals[i] * x[i] }
        let scale = sumC2.squareRoot()
        for i in 0..<d {
            g[i] = sa[i] * (x[i] * sumAC + scale * (normals[i] - projection * x[i]))
        }
    }
}

/// Online Gaussian data seen with input noise x̃ = x + ξ, ξ ~ N(0, B): sampled sample by sample.
struct NoisyInputGradient: MinibatchGradient {
    let sqrtA: UnsafePointer<Double>
    let teacher: UnsafePointer<Double>
    let labelNoise: Double
    /// B^{1/2} in the working basis.
    let inputNoiseRoot: SymmetricOperator.UnsafeView
    var batchSize: Int
    let dimension: Int
    /// Scratch: the noisy input, D normals, B^{1/2} times them.
    let x: ArenaVector
    let normals: ArenaVector
    let noise: ArenaVector
    let tables: Ziggurat

    @inline(__always)
    func accumulate(at w: ArenaVector, into g: inout ArenaVector, random: inout Xoshiro256StarStar) {
        let d = dimension, sa = sqrtA, u = teacher, x = x, normals = normals
        var noise = noise
        let tables = tables, root = inputNoiseRoot, labelNoise = labelNoise
        for _ in 0..<batchSize {
            var y = 0.0
            for i in 0..<d {
                let xi = sa[i] * random.normal(tables)
                x[i] = xi
                y += u[i] * xi
            }
            if labelNoise > 0 { y += labelNoise * random.normal(tables) }
            for i in 0..<d { normals[i] = random.normal(tables) }
            root.apply(normals, into: &noise, d)
            for i in 0..<d { x[i] += noise[i] }
            var r = -y
            for i in 0..<d { r += x[i] * w[i] }
            for i in 0..<d { g[i] += r * x[i] }
        }
    }
}

/// A finite dataset (rows of X, labels y), minibatches drawn by `sampling`.
struct DatasetGradient: MinibatchGradient {
    let x: UnsafePointer<Double>
    let y: UnsafePointer<Double>
    let rows: Int
    let sampling: Sampling
    var batchSize: Int
    let dimension: Int
    /// The partial shuffle (without replacement) or the epoch's permutation.
    private var permutation: [Int]
    /// The next index of the epoch's permutation (epoch shuffling).
    private var position: Int

    init(x: UnsafePointer<Double>, y: UnsafePointer<Double>, rows: Int, sampling: Sampling, batchSize: Int,
         dimension: Int) {
        self.x = x
        self.y = y
        self.rows = rows
        self.sampling = sampling
        self.batchSize = batchSize
        self.dimension = dimension
        permutation = sampling == .withReplacement ? [] : Array(0..<max(rows, 0))
        position = sampling == .epochShuffling ? rows : 0  // shuffle before the first batch
    }

    /// The row of the `j`-th sample of this step's batch.
    @inline(__always)
    private mutating func nextRow(_ j: Int, _ random: inout Xoshiro256StarStar) -> Int {
        switch sampling {
        case .withReplacement:
            return random.index(below: rows)
        case .withoutReplacement:
            let k = j + random.index(below: rows - j)
            permutation.swapAt(j, k)
            return permutation[j]
        case .epochShuffling:
            if position == rows {
                for k in stride(from: rows - 1, to: 0, by: -1) {
                    permutation.swapAt(k, random.index(below: k + 1))
                }
                position = 0
            }
            position += 1
            return permutation[position - 1]
        }
    }

    @inline(__always)
    mutating func accumulate(at w: ArenaVector, into g: inout ArenaVector, random: inout Xoshiro256StarStar) {
        let d = dimension
        for j in 0..<batchSize {
            let row = nextRow(j, &random)
            let xr = x + row * d
            var r = -y[row]
            for i in 0..<d { r += xr[i] * w[i] }
            for i in 0..<d { g[i] += r * xr[i] }
        }
    }
}
