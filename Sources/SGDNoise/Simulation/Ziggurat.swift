#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Standard normal variates by the ziggurat method (Marsaglia & Tsang 2000) with 256 layers and
/// one 64-bit draw per variate in the common case: 8 bits choose the layer, 1 bit the sign and
/// 52 bits the abscissa (so the three are independent, unlike the original 32-bit version).
/// About 99% of draws take the fast path; the wedges and the tail (x > r = 3.654…) are sampled
/// exactly by rejection.
struct Ziggurat: @unchecked Sendable {
    /// Right edges ratios x_{i−1}/x_i scaled to 2⁵², per layer.
    let k: UnsafePointer<UInt64>
    /// x_i / 2⁵².
    let w: UnsafePointer<Double>
    /// What the fast path reads, in one block addressed from one register: k (256 UInt64), then
    /// ±x_i / 2⁵² indexed by the 9 low bits of a draw (layer i, then the sign bit): w[i] at i and
    /// −w[i] at 256 + i, so the fast path's variate is one product (negating a product is exact).
    private let fastPath: UnsafeRawPointer
    /// f(x_i) = exp(−x_i²/2).
    let f: UnsafePointer<Double>

    static let r = 3.6541528853610088
    /// The tables, computed once and kept for the life of the process (never freed), so that
    /// inner loops read them through plain pointers.
    static let shared = Ziggurat()

    private init() {
        let m = 4503599627370496.0  // 2⁵²
        let v = 0.00492867323399
        var dn = Ziggurat.r
        var tn = dn
        let q = v / exp(-0.5 * dn * dn)
        let block = UnsafeMutableRawPointer.allocate(byteCount: 768 * 8, alignment: 64)
        let k = block.bindMemory(to: UInt64.self, capacity: 256)
        let w = UnsafeMutablePointer<Double>.allocate(capacity: 256)
        let f = UnsafeMutablePointer<Double>.allocate(capacity: 256)
        k.initialize(repeating: 0, count: 256)
        w.initialize(repeating: 0, count: 256)
        f.initialize(repeating: 0, count: 256)
        k[0] = UInt64((dn / q) * m)
        k[1] = 0
        w[0] = q / m
        w[255] = dn / m
        f[0] = 1
        f[255] = exp(-0.5 * dn * dn)
        for i in stride(from: 254, through: 1, by: -1) {
            dn = (-2 * log(v / dn + exp(-0.5 * dn * dn))).squareRoot()
            k[i + 1] = UInt64((dn / tn) * m)
            tn = dn
            f[i] = exp(-0.5 * dn * dn)
            w[i] = dn / m
        }
        let signedW = (block + 256 * 8).bindMemory(to: Double.self, capacity: 512)
        for i in 0..<256 {
            signedW[i] = w[i]
            signedW[256 + i] = -w[i]
        }
        self.k = UnsafePointer(k)
        self.w = UnsafePointer(w)
        self.f = UnsafePointer(f)
        fastPath = UnsafeRawPointer(block)
    }

    /// k[i], i < 256.
    @inline(__always)
    func bound(_ i: Int) -> UInt64 { fastPath.assumingMemoryBound(to: UInt64.self)[i] }

    /// w[j] for j < 256, −w[j − 256] for 256 ≤ j < 512.
    @inline(__always)
    func signedWidth(_ j: Int) -> Double { (fastPath + 256 * 8).assumingMemoryBound(to: Double.self)[j] }
}

extension Xoshiro256StarStar {
    /// A standard normal variate (ziggurat). The common case is inlined; the rare one (a draw
    /// outside the layers' rectangles, about 1.2%) continues out of line with the same draws, on
    /// a copy of the generator that it returns: the generator's address never escapes, so the
    /// inlined code keeps its state in registers.
    @inline(__always)
    mutating func normal(_ tables: Ziggurat) -> Double {
        let u = next()
        let magnitude = u >> 12
        // The sign bit 8 picks ±x_i in one table, without a branch (which a random sign would
        // mispredict every other draw): Double(magnitude) · (−w_i) is −x exactly.
        if magnitude < tables.bound(Int(u & 0xFF)) { return Double(magnitude) * tables.signedWidth(Int(u & 0x1FF)) }
        let (z, generator) = Self.normal(rejecting: u, self, tables)
        self = generator
        return z
    }

    /// `normal` from its first draw `u`, which fell outside the rectangles: the tail or a wedge
    /// by rejection, then new draws until one is accepted. Returns the variate and the generator.
    @inline(never)
    private static func normal(
        rejecting first: UInt64, _ generator: Xoshiro256StarStar, _ tables: Ziggurat
    ) -> (Double, Xoshiro256StarStar) {
        var random = generator
        return (random.normal(rejecting: first, tables), random)
    }

    private mutating func normal(rejecting first: UInt64, _ tables: Ziggurat) -> Double {
        let z = tables.k, w = tables.w, f = tables.f
        var u = first
        while true {
            let i = Int(u & 0xFF)
            let negative = (u & 0x100) != 0
            let magnitude = u >> 12
            let x = Double(magnitude) * w[i]
            if magnitude < z[i] { return negative ? -x : x }
            if i == 0 {
                // Tail beyond r (Marsaglia 1964).
                var xt = 0.0, yt = 0.0
                repeat {
                    xt = -log(uniformPositive()) / Ziggurat.r
                    yt = -log(uniformPositive())
                } while yt + yt < xt * xt
                return negative ? -(Ziggurat.r + xt) : (Ziggurat.r + xt)
            }
            // Wedge between layer i and the curve.
            if f[i] + uniform() * (f[i - 1] - f[i]) < exp(-0.5 * x * x) { return negative ? -x : x }
            u = next()
        }
    }
}

/// Gamma(a, 1) variates for one shape a > 0 (Marsaglia & Tsang 2000; a < 1 by the boost
/// Gamma(a) = Gamma(a + 1) · U^{1/a}), with the shape's constants computed once: a loop that
/// draws many variates of one shape keeps a sampler instead of recomputing them every draw.
struct GammaSampler {
    let shape: Double
    /// a < 1: sampled as Gamma(a + 1) · U^{1/a}.
    private let boosted: Bool
    /// d = a − 1/3 and c = 1/√(9d) of the sampled shape (a + 1 when boosted).
    private let d: Double
    private let c: Double

    init(shape a: Double) {
        shape = a
        boosted = a < 1
        d = (boosted ? a + 1 : a) - 1.0 / 3.0
        c = 1 / (9 * d).squareRoot()
    }

    @inline(__always)
    func sample(_ random: inout Xoshiro256StarStar, _ tables: Ziggurat) -> Double {
        let g = marsagliaTsang(&random, tables)
        return boosted ? g * pow(random.uniformPositive(), 1 / shape) : g
    }

    /// A Gamma(d + 1/3, 1) variate by squeeze and rejection: the first try inlined up to the
    /// squeeze (accepted about 98% of the time for the shapes of a minibatch), the rest out of line.
    @inline(__always)
    private func marsagliaTsang(_ random: inout Xoshiro256StarStar, _ tables: Ziggurat) -> Double {
        let x = random.normal(tables)
        let v = 1 + c * x
        let value: Double, generator: Xoshiro256StarStar
        if v <= 0 {  // as the loop's `repeat`
            (value, generator) = marsagliaTsang(rejected: nil, random, tables)
        } else {
            let v3 = v * v * v
            let u = random.uniformPositive()
            let x2 = x * x
            if u < 1 - 0.0331 * x2 * x2 { return d * v3 }
            (value, generator) = marsagliaTsang(rejected: (x2, v3, u), random, tables)
        }
        random = generator
        return value
    }

    /// After a first try the squeeze rejected (x², v, u), its exact test; then (or when the first
    /// try had v ≤ 0) the whole loop from a fresh draw. On a copy of the generator, returned (the
    /// generator's address never escapes the inlined code).
    @inline(never)
    private func marsagliaTsang(
        rejected first: (x2: Double, v: Double, u: Double)?, _ generator: Xoshiro256StarStar, _ tables: Ziggurat
    ) -> (Double, Xoshiro256StarStar) {
        if let (x2, v, u) = first, log(u) < 0.5 * x2 + d * (1 - v + log(v)) { return (d * v, generator) }
        var random = generator
        return (marsagliaTsangLoop(&random, tables), random)
    }

    /// The whole rejection loop, from a fresh draw.
    private func marsagliaTsangLoop(_ random: inout Xoshiro256StarStar, _ tables: Ziggurat) -> Double {
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = random.normal(tables)
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = random.uniformPositive()
            let x2 = x * x
            if u < 1 - 0.0331 * x2 * x2 { return d * v }
            if log(u) < 0.5 * x2 + d * (1 - v + log(v)) { return d * v }
        }
    }
}

/// χ²_k variates for one k ≥ 0 (2 · Gamma(k/2, 1); 0 for k = 0), the constants computed once.
struct ChiSquareSampler {
    private let gamma: GammaSampler?

    init(degreesOfFreedom k: Int) {
        gamma = k <= 0 ? nil : GammaSampler(shape: 0.5 * Double(k))
    }

    @inline(__always)
    func sample(_ random: inout Xoshiro256StarStar, _ tables: Ziggurat) -> Double {
        guard let gamma else { return 0 }
        return 2 * gamma.sample(&random, tables)
    }
}

extension Xoshiro256StarStar {
    /// A Gamma(shape, 1) variate, shape > 0 (`GammaSampler`).
    mutating func gamma(shape a: Double, _ tables: Ziggurat) -> Double {
        GammaSampler(shape: a).sample(&self, tables)
    }

    /// A χ²_k variate (0 for k = 0).
    @inline(__always)
    mutating func chiSquare(_ k: Int, _ tables: Ziggurat) -> Double {
        ChiSquareSampler(degreesOfFreedom: k).sample(&self, tables)
    }
}
