/// The vectors of a chain (w, the momentum, ĝ, e, the gradient's scratch): values the loop keeps
/// in registers for the small dimensions it is specialised for, memory in the chain's arena for
/// any other D. The loops over D read and write them by index, so one code serves both.
protocol ChainVector {
    subscript(index: Int) -> Double { get set }
}

extension SIMD2: ChainVector where Scalar == Double {}
extension SIMD4: ChainVector where Scalar == Double {}

/// A vector in arena memory: a copy of it is a second view of the same memory.
struct ArenaVector: ChainVector {
    let base: UnsafeMutablePointer<Double>

    subscript(index: Int) -> Double {
        @inline(__always) get { base[index] }
        @inline(__always) nonmutating set { base[index] = newValue }
    }
}

/// The length D of a chain's vectors and their type. The loops over D read `count`: a constant
/// for the `FixedDimension` types, so that a loop specialised for one of them is unrolled and
/// keeps its vectors (SIMD values) in registers.
protocol ChainDimension {
    associatedtype Vector: ChainVector
    var count: Int { get }
    /// Rows of e and η the recorder collects before adding them to the second moments: 16 for
    /// any D (each accumulator row is then read and written once per 16 steps instead of every
    /// step), 1 for a fixed D (its few accumulators are updated every step, the same additions
    /// in the same order).
    var pendingRows: Int { get }
    /// A vector of zeros.
    func zeros(_ arena: ChainArena) -> Vector
}

extension ChainDimension {
    /// A vector holding `values` (count entries).
    func vector(_ values: [Double], _ arena: ChainArena) -> Vector {
        var v = zeros(arena)
        for i in 0..<count { v[i] = values[i] }
        return v
    }
}

extension ChainDimension where Vector: SIMD, Vector.Scalar == Double {
    var pendingRows: Int { 1 }
    func zeros(_ arena: ChainArena) -> Vector { Vector() }
}

/// D known only at run time: vectors in arena memory.
struct DynamicDimension: ChainDimension {
    let count: Int
    var pendingRows: Int { 16 }

    func zeros(_ arena: ChainArena) -> ArenaVector { ArenaVector(base: arena.zeros(count)) }
}

/// D = 1 (in the first lane of a SIMD2).
struct FixedDimension1: ChainDimension {
    typealias Vector = SIMD2<Double>
    var count: Int { 1 }
}

/// D = 2.
struct FixedDimension2: ChainDimension {
    typealias Vector = SIMD2<Double>
    var count: Int { 2 }
}

/// D = 3 (in the first three lanes of a SIMD4).
struct FixedDimension3: ChainDimension {
    typealias Vector = SIMD4<Double>
    var count: Int { 3 }
}

/// D = 4.
struct FixedDimension4: ChainDimension {
    typealias Vector = SIMD4<Double>
    var count: Int { 4 }
}
