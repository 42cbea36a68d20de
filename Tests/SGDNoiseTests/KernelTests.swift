@testable import SGDNoise
import _SGDNoiseKernels
import Foundation
import Testing

/// The AVX2 + FMA kernels against the baseline ones (`Sources/_SGDNoiseKernels`) on awkward sizes:
/// rows not a multiple of 4 or 8, columns not a multiple of 4 or 8, a column range crossing a tile,
/// float and double rows. Both must agree to rounding (the FMA rounds once where the baseline
/// rounds twice). Where the processor has no AVX2, the baseline is checked against itself and
/// against a plain loop.
@Suite("Kernels: AVX2 against baseline")
struct KernelTests {
    static var baseline: sgn_kernels { sgn_kernels_baseline().pointee }
    static var candidate: sgn_kernels { sgn_kernels_avx2()?.pointee ?? sgn_kernels_baseline().pointee }
    static let tile = Kernels.tileColumns
    static let shapes: [(n: Int, d: Int)] = [(1, 1), (3, 7), (5, 9), (9, 13), (13, 33), (7, 4), (9, tile + 19)]

    struct Data<T: GradientScalar> {
        var g: [T], mean: [Double], x: [Double], u: [Double]
        init(n: Int, d: Int, seed: UInt64) {
            var rng = SeededGenerator(seed: seed)
            let centre = (0..<d).map { _ in rng.uniform(-2, 2) }
            g = (0..<(n * d)).map { T(centre[$0 % d] + rng.uniform(-1, 1)) }
            mean = centre
            x = (0..<d).map { _ in rng.uniform(-1, 1) }
            u = (0..<n).map { _ in rng.uniform(-1, 1) }
        }
    }

    /// |a − b| within 1e-13 of the sum of magnitudes behind each entry.
    static func expectClose(_ a: [Double], _ b: [Double], scale: [Double], _ what: String) {
        #expect(a.count == b.count)
        for k in 0..<a.count where abs(a[k] - b[k]) > 1e-13 * scale[k] {
            Issue.record("\(what): entry \(k) differs: \(a[k]) vs \(b[k]) (scale \(scale[k]))")
            return
        }
    }

    func check<T: GradientScalar>(_: T.Type, n: Int, d: Int) {
        let data = Data<T>(n: n, d: d, seed: UInt64(n * 1000 + d))
        let ranges = [0..<d] + (d > Self.tile ? [Self.tile..<d, 0..<Self.tile] : [])
        data.g.withUnsafeBufferPointer { gb in
            let g = gb.baseAddress!
            for range in ranges {
                // G_c x over the range, and Σ|g_ij − m_j||x_j| for the bound.
                var scale = [Double](repeating: 0, count: n)
                for i in 0..<n {
                    for j in range { scale[i] += abs(Double(data.g[i * d + j]) - data.mean[j]) * abs(data.x[j]) + abs(data.mean[j] * data.x[j]) }
                }
                var plain = [Double](repeating: 0, count: n)
                for i in 0..<n { for j in range { plain[i] += (Double(data.g[i * d + j]) - data.mean[j]) * data.x[j] } }
                var outputs: [[Double]] = []
                for k in [Self.baseline, Self.candidate] {
                    var y = [Double](repeating: 0.5, count: n)
                    Kernels.centredDot(kernels: k, g, rows: n, columns: d, range: range, mean: data.mean, x: data.x, into: &y)
                    outputs.append(y.map { $0 - 0.5 })
                }
                Self.expectClose(outputs[0], outputs[1], scale: scale, "G_c x \(T.self) \(n)×\(d) \(range)")
                Self.expectClose(outputs[0], plain, scale: scale, "G_c x \(T.self) \(n)×\(d) \(range) vs loop")

                // G_cᵀ u over the range (added into w).
                var wScale = [Double](repeating: 1, count: d)
                for i in 0..<n { for j in range { wScale[j] += (abs(Double(data.g[i * d + j])) + abs(data.mean[j])) * abs(data.u[i]) } }
                var w = [[Double]](repeating: [Double](repeating: 1, count: d), count: 2)
                for (slot, k) in [Self.baseline, Self.candidate].enumerated() {
                    Kernels.centredAxpy(kernels: k, g, rows: n, columns: d, range: range, mean: data.mean, u: data.u, into: &w[slot])
                }
                var plainW = [Double](repeating: 1, count: d)
                for i in 0..<n { for j in range { plainW[j] += data.u[i] * (Double(data.g[i * d + j]) - data.mean[j]) } }
                Self.expectClose(w[0], w[1], scale: wScale, "G_cᵀu \(T.self) \(n)×\(d) \(range)")
                Self.expectClose(w[0], plainW, scale: wScale, "G_cᵀu \(T.self) \(n)×\(d) \(range) vs loop")
            }

            // Column sums, sums of squares, centred rows.
            var sums = [[Double]](repeating: [Double](repeating: 0, count: d), count: 2)
            var squares = sums, centred = [[Double]](repeating: [Double](repeating: 0, count: n * d), count: 2)
            for (slot, k) in [Self.baseline, Self.candidate].enumerated() {
                Kernels.columnMoments(kernels: k, g, rows: n, columns: d, sum: &sums[slot], squares: &squares[slot])
                Kernels.centreRows(kernels: k, g, rows: n, columns: d, mean: data.mean, into: &centred[slot])
            }
            var absSum = [Double](repeating: 0, count: d)
            for i in 0..<n { for j in 0..<d { absSum[j] += abs(Double(data.g[i * d + j])) } }
            Self.expectClose(sums[0], sums[1], scale: absSum, "column sums \(T.self) \(n)×\(d)")
            Self.expectClose(squares[0], squares[1], scale: squares[0], "column squares \(T.self) \(n)×\(d)")
            #expect(centred[0] == centred[1], "centred rows \(T.self) \(n)×\(d)")
            #expect(centred[0] == (0..<(n * d)).map { Double(data.g[$0]) - data.mean[$0 % d] })
        }
    }

    @Test("float rows", arguments: shapes)
    func floatRows(n: Int, d: Int) { check(Float.self, n: n, d: d) }

    @Test("double rows", arguments: shapes)
    func doubleRows(n: Int, d: Int) { check(Double.self, n: n, d: d) }

    /// The long-vector kernels (lanczosDots, combineAndProject, subtractRowsAndScale, projectRows,
    /// combineRows),
    /// each implementation against plain loops, on lengths around the chunk and the vector width,
    /// with 0 to 5 terms and rows, and on a length split into parallel ranges (`fusedKernelRanges`).
    @Test("Lanczos kernels against plain loops (one range, and the parallel ranges from 2^17 on)", arguments: [1, 7, 9, 511, 513, 1029, 8191, 8193, 16_389, (1 << 17) + 517])
    func lanczosKernels(n: Int) {
        var rng = SeededGenerator(seed: UInt64(n))
        func vector() -> [Double] { (0..<n).map { _ in rng.uniform(-1, 1) } }
        let h = vector(), v = vector(), u = vector()
        let xs = (0..<3).map { _ in vector() }, a = [0.7, -1.3, 0.25]
        let rowCount = 5
        let rows = (0..<rowCount).flatMap { _ in vector() }
        let c = (0..<rowCount).map { _ in rng.uniform(-1, 1) }
        func dot(_ x: [Double], _ y: [Double]) -> Double { zip(x, y).reduce(0) { $0 + $1.0 * $1.1 } }
        func row(_ i: Int) -> [Double] { Array(rows[(i * n)..<((i + 1) * n)]) }
        let bound = 1e-13 * Double(n)
        for k in [Self.baseline, Self.candidate] {
            for withU in [false, true] {
                let d = h.withUnsafeBufferPointer { hp in
                    v.withUnsafeBufferPointer { vp in
                        u.withUnsafeBufferPointer { up in
                            lanczosDots(hp.baseAddress!, vp.baseAddress!, withU ? up.baseAddress! : nil, count: n, kernels: k)
                        }
                    }
                }
                #expect(abs(d.hh - dot(h, h)) <= bound && abs(d.vh - dot(v, h)) <= bound)
                #expect(abs(d.vu - (withU ? dot(v, u) : 0)) <= bound)
            }
            for terms in 0...3 {
                for projected in [0, 1, rowCount] {
                    var expected = h
                    for s in 0..<terms { for j in 0..<n { expected[j] -= a[s] * xs[s][j] } }
                    var w = [Double](repeating: .nan, count: n)
                    var projections = [Double](repeating: .nan, count: rowCount)
                    let ww = xs[0].withUnsafeBufferPointer { x0 in
                        xs[1].withUnsafeBufferPointer { x1 in
                            xs[2].withUnsafeBufferPointer { x2 in
                                let pointers = [x0.baseAddress!, x1.baseAddress!, x2.baseAddress!]
                                return combineAndProject(
                                    h, minus: (0..<terms).map { (a[$0], pointers[$0]) }, rows: rows, rowCount: projected,
                                    count: n, into: &w, projections: &projections, kernels: k)
                            }
                        }
                    }
                    #expect(zip(w, expected).allSatisfy { abs($0 - $1) <= 1e-14 })
                    #expect(abs(ww - dot(expected, expected)) <= bound)
                    for i in 0..<projected { #expect(abs(projections[i] - dot(row(i), expected)) <= bound) }
                    // out = (w − Σ c_i r_i) · 0.5, out of place and in place.
                    var reference = expected
                    for i in 0..<projected { for j in 0..<n { reference[j] -= c[i] * rows[i * n + j] } }
                    reference = reference.map { $0 * 0.5 }
                    var out = [Double](repeating: .nan, count: n)
                    subtractRowsAndScale(expected, rows: rows, rowCount: projected, coefficients: c, scale: 0.5, count: n,
                                         into: &out, kernels: k)
                    #expect(zip(out, reference).allSatisfy { abs($0 - $1) <= 1e-14 })
                    w.withUnsafeMutableBufferPointer { wp in
                        subtractRowsAndScale(wp.baseAddress!, rows: rows, rowCount: projected, coefficients: c, scale: 0.5,
                                             count: n, into: wp.baseAddress!, kernels: k)
                    }
                    #expect(zip(w, reference).allSatisfy { abs($0 - $1) <= 1e-14 })
                }
            }
            // No rows: hᵀh alone, and a plain scaling, with nil rows and coefficients.
            #expect(abs(projectRowsAndSquare(nil, rows: 0, length: n, h, into: nil, kernels: k) - dot(h, h)) <= bound)
            var scaled = [Double](repeating: .nan, count: n)
            subtractRowsAndScale(h, rows: nil, rowCount: 0, coefficients: nil, scale: -0.75, count: n, into: &scaled,
                                 kernels: k)
            #expect(scaled == h.map { $0 * -0.75 })
            // c = R h and hᵀh in one pass (rows of leading dimension n), for 0, 1 and 5 rows.
            for projected in [0, 1, rowCount] {
                var projections = [Double](repeating: .nan, count: rowCount)
                let hh = projectRowsAndSquare(rows, rows: projected, length: n, h, into: &projections, kernels: k)
                #expect(abs(hh - dot(h, h)) <= bound)
                for i in 0..<projected { #expect(abs(projections[i] - dot(row(i), h)) <= bound) }
            }
            // Recombination out_o = Σ_s a_os r_s for 1 to 6 outputs (groups of four and the rest), out
            // of place into NaN-filled rows, and in place over the input rows themselves.
            for outputs in [1, 3, 4, 6] {
                let coefficients = (0..<(outputs * rowCount)).map { _ in rng.uniform(-1, 1) }
                var reference = [Double](repeating: 0, count: outputs * n)
                for o in 0..<outputs {
                    for s in 0..<rowCount { for j in 0..<n { reference[o * n + j] += coefficients[o * rowCount + s] * rows[s * n + j] } }
                }
                var out = [Double](repeating: .nan, count: outputs * n)
                combineRows(rows, from: rowCount, length: n, outputs: outputs, coefficients: coefficients, into: &out, kernels: k)
                #expect(zip(out, reference).allSatisfy { abs($0 - $1) <= 1e-14 })
                guard outputs <= rowCount else { continue }
                var inPlace = rows
                inPlace.withUnsafeMutableBufferPointer { ip in
                    combineRows(ip.baseAddress!, from: rowCount, length: n, outputs: outputs, coefficients: coefficients,
                                into: ip.baseAddress!, kernels: k)
                }
                #expect(zip(inPlace.prefix(outputs * n), reference).allSatisfy { abs($0 - $1) <= 1e-14 })
                #expect(inPlace.suffix((rowCount - outputs) * n) == rows.suffix((rowCount - outputs) * n))
            }
        }
    }

    @Test("the active implementation is one of the two and honours SGDNOISE_KERNELS")
    func active() {
        let name = String(cString: Kernels.active.name)
        #expect(name == "baseline" || name == "avx2")
        if let forced = getenv("SGDNOISE_KERNELS"), String(cString: forced) == "baseline" { #expect(name == "baseline") }
    }
}
