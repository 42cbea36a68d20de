import _SGDNoiseKernels

/// The memory-bound kernels of the noise operator and the accumulator (`Sources/_SGDNoiseKernels`:
/// C, compiled for the baseline x86-64 target and for AVX2 + FMA, one of them chosen once per
/// process; `SGDNOISE_KERNELS=baseline` forces the baseline). Every sum is in `Double`; `Float`
/// rows are widened as they are loaded.
///
/// Each function takes the implementation to run (`Kernels.active` by default, so that the tests
/// can run both on the same data). Gradients of a `GradientScalar` other than `Float` and `Double`
/// are widened to `Double` one row at a time and handed to the `Double` kernel.
enum Kernels {
    /// The implementation in use.
    static var active: sgn_kernels { sgn_kernels_active().pointee }

    /// Columns per tile of the one-vector kernels: parallel callers split columns at multiples of it.
    static var tileColumns: Int { Int(SGN_KERNELS_TILE_COLUMNS) }

    /// Calls `float` on `g` as `Float` rows, or `double(rows, first, count)` on `g` as `Double`
    /// rows: once for all n rows, or, for another scalar type, once per row widened into a buffer
    /// (first = that row, count = 1).
    @inline(__always)
    static func rows<T: GradientScalar>(
        _ g: UnsafePointer<T>, _ n: Int, _ d: Int,
        float: (UnsafePointer<Float>) -> Void,
        double: (UnsafePointer<Double>, _ first: Int, _ count: Int) -> Void
    ) {
        if T.self == Float.self {
            float(UnsafeRawPointer(g).assumingMemoryBound(to: Float.self))
        } else if T.self == Double.self {
            double(UnsafeRawPointer(g).assumingMemoryBound(to: Double.self), 0, n)
        } else {
            let row = UnsafeMutablePointer<Double>.allocate(capacity: d)
            defer { row.deallocate() }
            for i in 0..<n {
                for j in 0..<d { row[j] = Double(g[i * d + j]) }
                double(row, i, 1)
            }
        }
    }

    /// y_i += Σ_{j ∈ range} (g_ij − mean_j) x_j for every row i < n.
    static func centredDot<T: GradientScalar>(
        kernels k: sgn_kernels = active, _ g: UnsafePointer<T>, rows n: Int, columns d: Int, range: Range<Int>,
        mean: UnsafePointer<Double>, x: UnsafePointer<Double>, into y: UnsafeMutablePointer<Double>
    ) {
        let (lo, hi) = (range.lowerBound, range.upperBound)
        rows(g, n, d,
             float: { k.centred_dot_f32($0, n, d, lo, hi, mean, x, y) },
             double: { k.centred_dot_f64($0, $2, d, lo, hi, mean, x, y + $1) })
    }

    /// w_j += Σ_{i < n} u_i (g_ij − mean_j) for j in `range`.
    static func centredAxpy<T: GradientScalar>(
        kernels k: sgn_kernels = active, _ g: UnsafePointer<T>, rows n: Int, columns d: Int, range: Range<Int>,
        mean: UnsafePointer<Double>, u: UnsafePointer<Double>, into w: UnsafeMutablePointer<Double>
    ) {
        let (lo, hi) = (range.lowerBound, range.upperBound)
        func sum(_ first: Int, _ count: Int) -> Double {
            var s = 0.0
            for i in first..<(first + count) { s += u[i] }
            return s
        }
        rows(g, n, d,
             float: { k.centred_axpy_f32($0, n, d, lo, hi, mean, u, sum(0, n), w) },
             double: { k.centred_axpy_f64($0, $2, d, lo, hi, mean, u + $1, sum($1, $2), w) })
    }

    /// sum_j += Σ_i g_ij and, when `squares` is given, squares_j += Σ_i g_ij² (j < d, i < n).
    static func columnMoments<T: GradientScalar>(
        kernels k: sgn_kernels = active, _ g: UnsafePointer<T>, rows n: Int, columns d: Int,
        sum: UnsafeMutablePointer<Double>, squares: UnsafeMutablePointer<Double>?
    ) {
        rows(g, n, d,
             float: { k.column_moments_f32($0, n, d, sum, squares) },
             double: { k.column_moments_f64($0, $2, d, sum, squares) })
    }

    /// out_ij = g_ij − mean_j for i < n, j < d (out row-major, leading dimension d).
    static func centreRows<T: GradientScalar>(
        kernels k: sgn_kernels = active, _ g: UnsafePointer<T>, rows n: Int, columns d: Int,
        mean: UnsafePointer<Double>, into out: UnsafeMutablePointer<Double>
    ) {
        rows(g, n, d,
             float: { k.centre_rows_f32($0, n, d, mean, out) },
             double: { k.centre_rows_f64($0, $2, d, mean, out + $1 * d) })
    }
}
