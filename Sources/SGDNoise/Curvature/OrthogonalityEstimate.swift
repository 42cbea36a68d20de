/// An estimate of the loss of orthogonality of a Lanczos basis, Ω ≈ VᵀV, from the small matrix T
/// alone (Simon 1984, generalised here to thick restart), so that the reorthogonalisation against
/// the whole basis — the library's largest cost per step at large P — runs only when the new
/// vector would otherwise lose more than `limit` of orthogonality to some basis row (partial
/// reorthogonalisation).
///
/// **Recurrence.** The computed vectors satisfy H v_k = Σ_i T_ik v_i − f_k for every row k whose
/// couplings T holds (f_k the local error of that step: the product's own error and rounding).
/// Taking the inner product of step j's relation with v_k, and of step k's with v_j, for k ≤ j:
///
///     β_{j+1} ω_{j+1,k} = Σ_i T_ik ω_ij − Σ_i T_ij ω_ik + (v_kᵀ f_j − v_jᵀ f_k),
///
/// that is, β_{j+1} ω_{j+1,·} = ([T, Ω] e_j) + noise, for any pattern of T: the tridiagonal steps,
/// and the arrow that a thick restart leaves. The noise term is bounded by ν ‖H v_j‖ and added
/// with the sign of the propagated part (the worst case, as in Simon's estimate); ν is
/// **measured**: it is the largest |v_kᵀ w|/‖H v_j‖ seen on the first steps of a run, whose vectors
/// are fully reorthogonalised (float64 products give ν of the order of 10⁻¹⁵, float32 ones of 10⁻⁸),
/// and it is raised whenever a later full pass measures more loss than was estimated.
///
/// **Restart.** When the basis is compressed to combinations V z_a (the kept Ritz vectors and the
/// residual vector), the estimate follows: Ω' = Zᵀ Ω Z.
struct OrthogonalityEstimate {
    /// The rows the estimate can hold (the basis rows 0…m).
    let size: Int
    /// Ω, size × size, row-major, symmetric, with 1 on the diagonal (rows beyond the basis unused).
    private(set) var omega: [Double]
    /// ν: the local loss per step relative to ‖H v_j‖.
    private(set) var noise: Double

    init(size: Int) {
        self.size = size
        omega = [Double](repeating: 0, count: size * size)
        for i in 0..<size { omega[i * size + i] = 1 }
        noise = 4 * Double.ulpOfOne
    }

    /// ω_{ik}.
    subscript(i: Int, k: Int) -> Double { omega[i * size + k] }

    /// ([T, Ω] e_j)_k for k ≤ j, with T the m × m row-major matrix `t` and column j of T given as
    /// `column` (j + 1 entries: its couplings and α_j, which T does not hold yet).
    func commutatorColumn(t: [Double], stride m: Int, column: [Double], j: Int) -> [Double] {
        var out = [Double](repeating: 0, count: j + 1)
        for k in 0...j {
            var sum = 0.0
            for i in 0...j {
                let tik = i == j ? column[k] : t[i * m + k]
                sum += tik * omega[i * size + j] - column[i] * omega[i * size + k]
            }
            out[k] = sum
        }
        return out
    }

    /// The estimate of row j + 1 (entries k ≤ j) from the commutator column, the product's norm and
    /// β_{j+1}: (c_k ± ν ‖H v_j‖)/β, the noise with the sign of c_k.
    func predictedRow(commutator: [Double], productNorm: Double, beta: Double) -> [Double] {
        let local = noise * productNorm
        return commutator.map { c in (c + (c < 0 ? -local : local)) / beta }
    }

    /// Records row `row` of Ω (entries k < row; the diagonal stays 1).
    mutating func setRow(_ row: Int, _ values: [Double]) {
        for (k, value) in values.enumerated() where k != row {
            omega[row * size + k] = value
            omega[k * size + row] = value
        }
    }

    /// Row `row` after a full reorthogonalisation: orthogonal to the rows before it to rounding.
    mutating func resetRow(_ row: Int) {
        setRow(row, [Double](repeating: Double.ulpOfOne, count: row))
    }

    /// Raises ν to `measured` (a local loss relative to ‖H v_j‖ seen on a fully reorthogonalised
    /// step).
    mutating func observeNoise(_ measured: Double) {
        if measured.isFinite && measured > noise { noise = measured }
    }

    /// Scales ν up by `factor` (> 1): a full pass measured more loss than was estimated.
    mutating func underestimated(by factor: Double) {
        if factor.isFinite && factor > 1 { noise *= factor }
    }

    /// The basis is replaced by the combinations x_a = Σ_r z[a][r] v_r (`z` holds one array of
    /// coefficients per new row, each over the old rows it names): Ω' = Zᵀ Ω Z, with 1 on the
    /// diagonal.
    mutating func compress(_ z: [[Double]]) {
        let n = z.count
        var next = [Double](repeating: 0, count: n * n)
        // Ω z_b for each b, then z_aᵀ (Ω z_b).
        for b in 0..<n {
            let zb = z[b]
            var oz = [Double](repeating: 0, count: size)
            for r in 0..<size {
                var sum = 0.0
                for (s, value) in zb.enumerated() where value != 0 { sum += omega[r * size + s] * value }
                oz[r] = sum
            }
            for a in 0...b {
                var sum = 0.0
                for (r, value) in z[a].enumerated() where value != 0 { sum += value * oz[r] }
                next[a * n + b] = sum
                next[b * n + a] = sum
            }
        }
        for i in 0..<size {
            for k in 0..<size { omega[i * size + k] = i == k ? 1 : (i < n && k < n ? next[i * n + k] : 0) }
        }
    }
}
