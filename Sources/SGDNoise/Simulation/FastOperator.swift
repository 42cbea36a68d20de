/// A `WorkingOperator` copied into memory the chain owns, applied in the inner loop without
/// reference counting or enum payload copies.
struct FastOperator {
    /// 0 zero, 1 scalar, 2 diagonal, 3 dense.
    let kind: Int
    let scalar: Double
    let data: UnsafeMutablePointer<Double>?

    init(_ op: WorkingOperator) {
        switch op {
        case .zero:
            kind = 0; scalar = 0; data = nil
        case .scalar(let s):
            kind = 1; scalar = s; data = nil
        case .diagonal(let v):
            kind = 2; scalar = 0; data = FastOperator.copy(v)
        case .dense(let m):
            kind = 3; scalar = 0; data = FastOperator.copy(m.elements)
        }
    }

    static func copy(_ v: [Double]) -> UnsafeMutablePointer<Double> {
        let p = UnsafeMutablePointer<Double>.allocate(capacity: max(v.count, 1))
        v.withUnsafeBufferPointer { p.initialize(from: $0.baseAddress!, count: v.count) }
        return p
    }

    func free() { data?.deallocate() }

    var isZero: Bool { kind == 0 }

    /// y = self · x.
    @inline(__always)
    func apply(_ x: UnsafePointer<Double>, into y: UnsafeMutablePointer<Double>, _ n: Int) {
        switch kind {
        case 0:
            for i in 0..<n { y[i] = 0 }
        case 1:
            for i in 0..<n { y[i] = scalar * x[i] }
        case 2:
            let d = data!
            for i in 0..<n { y[i] = d[i] * x[i] }
        default:
            let a = data!
            for i in 0..<n {
                var s = 0.0
                let row = a + i * n
                for j in 0..<n { s += row[j] * x[j] }
                y[i] = s
            }
        }
    }
}
