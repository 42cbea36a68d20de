/// Anderson acceleration (type II, Walker & Ni 2011) of a fixed-point iteration x ← g(x) on
/// vectors of `Double`: the next iterate mixes the last `memory` iterates so that the combined
/// residual g(x) − x is least-squares minimal. Used by the iterative stationary solvers, whose
/// Picard iteration is linear and converges at the rate of its spectral radius.
struct AndersonAccelerator {
    let memory: Int
    private var previousX: [Double]? = nil
    private var previousF: [Double]? = nil
    private var deltaX: [[Double]] = []
    private var deltaF: [[Double]] = []

    init(memory: Int = 6) { self.memory = memory }

    /// Given the current iterate x and g(x), returns the next iterate.
    mutating func next(x: [Double], gx: [Double]) -> [Double] {
        let f = zip(gx, x).map { $0 - $1 }
        defer {
            previousX = x
            previousF = f
        }
        if let px = previousX, let pf = previousF {
            deltaX.append(zip(x, px).map { $0 - $1 })
            deltaF.append(zip(f, pf).map { $0 - $1 })
            if deltaX.count > memory {
                deltaX.removeFirst()
                deltaF.removeFirst()
            }
        }
        let k = deltaF.count
        guard k > 0 else { return gx }
        // Least squares min ‖f − ΔF γ‖ through the (regularised) normal equations: k ≤ memory.
        var gram = [Double](repeating: 0, count: k * k)
        var rhs = [Double](repeating: 0, count: k)
        for a in 0..<k {
            for b in a..<k {
                let v = dot(deltaF[a], deltaF[b])
                gram[a * k + b] = v
                gram[b * k + a] = v
            }
            rhs[a] = dot(deltaF[a], f)
        }
        let trace = (0..<k).reduce(0.0) { $0 + gram[$1 * k + $1] }
        for a in 0..<k { gram[a * k + a] += 1e-12 * trace + .leastNormalMagnitude }
        guard let gamma = solveSmall(gram, rhs, k) else { return gx }
        var next = gx
        for a in 0..<k {
            let g = gamma[a]
            for i in next.indices { next[i] -= g * (deltaX[a][i] + deltaF[a][i]) }
        }
        return next
    }

    private func dot(_ a: [Double], _ b: [Double]) -> Double {
        var s = 0.0
        for i in a.indices { s += a[i] * b[i] }
        return s
    }

    /// Gaussian elimination with partial pivoting for a k × k system (k ≤ memory).
    private func solveSmall(_ a0: [Double], _ b0: [Double], _ k: Int) -> [Double]? {
        var a = a0, b = b0
        for col in 0..<k {
            var pivot = col
            for r in col..<k where abs(a[r * k + col]) > abs(a[pivot * k + col]) { pivot = r }
            guard a[pivot * k + col] != 0 else { return nil }
            if pivot != col {
                for c in 0..<k { a.swapAt(col * k + c, pivot * k + c) }
                b.swapAt(col, pivot)
            }
            for r in (col + 1)..<k {
                let factor = a[r * k + col] / a[col * k + col]
                for c in col..<k { a[r * k + c] -= factor * a[col * k + c] }
                b[r] -= factor * b[col]
            }
        }
        var x = [Double](repeating: 0, count: k)
        for r in stride(from: k - 1, through: 0, by: -1) {
            var s = b[r]
            for c in (r + 1)..<k { s -= a[r * k + c] * x[c] }
            x[r] = s / a[r * k + r]
        }
        return x.allSatisfy({ $0.isFinite }) ? x : nil
    }
}
