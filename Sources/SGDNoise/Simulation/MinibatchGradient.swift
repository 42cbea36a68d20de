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
/// D + 1 normals and one χ²_S variate instead of S·D normals.
///
/// In A's eigenbasis x_i = √a ⊙ z_i; with v = √a ⊙ (w − u) and z_i = α_i v̂ + z⊥_i, the residuals are
/// c_i = α_i|v| − ε_i and the sum is √a ⊙ (v̂ Σα_i c_i + (Σc_i²)^{1/2} ζ⊥), ζ⊥ ~ N(0, I − v̂v̂ᵀ)
/// independent of (α, ε). The c_i are N(0, s²) with s² = |v|² + σ², and α_i = (|v|/s²) c_i + (σ/s) η_i
/// with η_i standard normal and independent of c; Bartlett's decomposition of (Σγ_i², Σγ_iη_i),
/// γ_i = c_i/s, gives Σc_i² = s²χ²_S and Σα_ic_i = |v|χ²_S + σ(χ²_S)^{1/2} n for one more normal n:
///
///     sum = √a ⊙ (v (χ²_S + (σ √χ²_S n |v| − s √χ²_S (ζ·v)) / |v|²) + s √χ²_S ζ),   ζ ~ N(0, I_D).
///
/// |v|, s and 1/|v|² are independent functions of |v|², so a step waits for one square root or one
/// division, not a chain of them.
struct ExactGaussianGradient<Dimension: ChainDimension>: MinibatchGradient {
    typealias Vector = Dimension.Vector
    /// √a_i, the teacher and σ in the working basis.
    let sqrtA: Vector
    let teacher: Vector
    let labelNoise: Double
    var batchSize: Int {
        didSet { if batchSize != oldValue { chiS = ChiSquareSampler(degreesOfFreedom: batchSize) } }
    }
    let dimension: Dimension
    /// Scratch: v and the D normals.
    let direction: Vector
    let normals: Vector
    let tables: Ziggurat
    /// χ²_S for the current batch size.
    private var chiS: ChiSquareSampler

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
        chiS = ChiSquareSampler(degreesOfFreedom: batchSize)
    }

    @inline(__always)
    func accumulate(at w: Vector, into g: inout Vector, random: inout Xoshiro256StarStar) {
        // A copy of a scratch vector is scratch: a fresh value, or the same arena memory.
        var v = direction, normals = normals
        let d = dimension.count, sa = sqrtA, u = teacher
        let tables = tables, sigma = labelNoise
        // The variates first, in the order of the stream (they do not depend on w).
        let chi2 = chiS.sample(&random, tables)
        let n = random.normal(tables)
        for i in 0..<d { normals[i] = random.normal(tables) }
        let l = chi2.squareRoot()
        let sigmaLN = sigma * l * n
        var norm2 = 0.0, dot = 0.0
        for i in 0..<d {
            let vi = sa[i] * (w[i] - u[i])
            v[i] = vi
            norm2 += vi * vi
            dot += normals[i] * vi
        }
        let along: Double, sl: Double
        if norm2 >= Self.smallestSquaredNorm {
            // |v|, s and 1/|v|² in parallel: one multiply after the slowest of them.
            sl = (norm2 + sigma * sigma).squareRoot() * l
            along = chi2 + (sigmaLN * norm2.squareRoot() - sl * dot) * (1 / norm2)
        } else {
            // |v|² too small for its reciprocal, or subnormal, or 0: v scaled by 2⁶⁰⁰ (exact, as
            // |v| < 2⁻⁵¹⁰) gives v̂ and |v| to full precision; e₁ stands for v̂ when v = 0.
            var scaled2 = 0.0
            for i in 0..<d {
                v[i] *= 0x1p600
                scaled2 += v[i] * v[i]
            }
            let scaledNorm = scaled2.squareRoot()
            if scaledNorm > 0 {
                for i in 0..<d { v[i] /= scaledNorm }
            } else {
                for i in 0..<d { v[i] = i == 0 ? 1 : 0 }
            }
            var dotHat = 0.0
            for i in 0..<d { dotHat += normals[i] * v[i] }
            let norm = scaledNorm * 0x1p-600
            let big = max(norm, sigma), small = min(norm, sigma)
            sl = big == 0 ? 0 : big * (1 + (small / big) * (small / big)).squareRoot() * l  // s = √(|v|² + σ²)
            // v now holds v̂: v̂ (|v|χ²_S + σ√χ²_S n − s√χ²_S (ζ·v̂)).
            along = norm * chi2 + sigmaLN - sl * dotHat
        }
        for i in 0..<d {
            g[i] = sa[i] * (v[i] * along + sl * normals[i])
        }
    }

    /// Below this |v|² (just above the smallest normal double, 2⁻¹⁰²²) a step takes the rescaled
    /// route: a subnormal |v|² would lose bits, and its reciprocal could overflow.
    static var smallestSquaredNorm: Double { 0x1p-1020 }
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
