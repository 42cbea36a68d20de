import Foundation
@testable import SGDNoise
import Testing

/// The block form of the Hessian-vector product (`HessianOperator(dimension:blockSize:blockProduct:)`,
/// docs/theory.md §8): the block products against a naive dense product, the counters, the checks,
/// and the probe algorithms run in lockstep against the same algorithms fed one vector at a time.
///
/// Two kinds of equality are tested. A block operator whose block closure calls the single closure
/// row by row gives every probe the very bits it gets alone, so the results must be bit-identical
/// (`==`). A block operator computing V·H by GEMM differs from GEMV in rounding only: those results
/// agree to the accuracy of the algorithms (the Krylov tolerance 1e-12 per probe, the eigenpair
/// tolerance 1e-12), checked at 1e-9 relative.
@Suite("Block Hessian-vector products (§8)")
struct BlockProductTests {
    /// H with a separated top (5, 3, 2.5, 2) and a bulk in [0, 1), and a noise C.
    static func problem(_ p: Int, seed: UInt64) -> (Matrix, Matrix) { NetworkFluctuationTests.problem(p, seed: seed) }

    /// out ← M v by a naive loop (the independent route).
    static func single(_ m: Matrix) -> HessianOperator.Product { NetworkFluctuationTests.matvec(m) }

    /// The block form that applies `product` to each row: every row gets the single product's bits.
    static func looping(_ product: @escaping HessianOperator.Product, dimension p: Int, blockSize: Int,
                        calls: UnsafeMutablePointer<Int>? = nil) throws -> HessianOperator {
        try HessianOperator(dimension: p, blockSize: blockSize) { count, v, out in
            calls?.pointee += 1
            precondition(count >= 1 && count <= blockSize && v.count == count * p && out.count == count * p)
            for r in 0..<count {
                try product(UnsafeBufferPointer(rebasing: v[(r * p)..<((r + 1) * p)]),
                            UnsafeMutableBufferPointer(rebasing: out[(r * p)..<((r + 1) * p)]))
            }
        }
    }

    /// The block form by one GEMM: out = V · M (M symmetric, so row r is M v_r).
    static func gemm(_ m: Matrix, blockSize: Int) throws -> HessianOperator {
        let p = m.rows
        return try HessianOperator(dimension: p, blockSize: blockSize) { count, v, out in
            let block = try Matrix(rows: count, columns: p, elements: Array(v))
            let product = Matrix.product(block, m)
            for i in 0..<(count * p) { out[i] = product.elements[i] }
        }
    }

    @Test("apply(block:) against the naive product, in calls of at most blockSize; counters count vectors and calls")
    func blockApply() throws {
        let p = 13
        let (h, _) = Self.problem(p, seed: 3)
        var rng = SeededGenerator(seed: 4)
        let v = try Matrix(rows: 7, columns: p, elements: rng.uniformArray(7 * p, -1, 1))
        var expected = Matrix(rows: 7, columns: p)
        for r in 0..<7 { for i in 0..<p { for j in 0..<p { expected[r, i] += h[i, j] * v[r, j] } } }
        var calls = 0
        let block = try Self.looping(Self.single(h), dimension: p, blockSize: 3, calls: &calls)
        let got = try block.apply(block: v)
        #expect(got == expected)  // each row is the naive loop's, bit for bit
        #expect(calls == 3 && block.callCount == 3 && block.productCount == 7)  // 3 + 3 + 1
        // A single-vector operator serves a block by looping; a block operator a vector as a block of one.
        let one = try HessianOperator(dimension: p, product: Self.single(h))
        #expect(try one.apply(block: v) == expected)
        #expect(one.callCount == 7 && one.productCount == 7 && one.blockSize == 1)
        let row = Array(v.elements[0..<p])
        #expect(try block.apply(row) == Array(expected.elements[0..<p]))
        #expect(block.callCount == 4 && block.productCount == 8)
        // Preconditioned (diagonal Λ) blocks against D^{1/2} H D^{1/2} v_r.
        let d = (0..<p).map { 0.1 + Double($0) / Double(p) }
        let tilde = try HessianOperator(preconditioning: block, learningRate: .diagonal(d))
        #expect(tilde.blockSize == 3)
        let root = Matrix.diagonal(d.map { $0.squareRoot() })
        let dense = Matrix.product(root, Matrix.product(h, root))
        let reference = Matrix.product(v, dense)
        #expect((try tilde.apply(block: v) - reference).maxAbs <= 1e-14 * reference.maxAbs)
        let scalar = try HessianOperator(preconditioning: block, learningRate: .scalar(0.3))
        #expect((try scalar.apply(block: v) - 0.3 * expected).maxAbs <= 1e-15 * expected.maxAbs)
    }

    struct Stop: Error, Equatable {}

    @Test("block errors: NaN/Inf in any row, a thrown error propagates, invalid blocks and sizes are rejected")
    func blockErrors() throws {
        let nan = try HessianOperator(dimension: 5, blockSize: 4) { count, _, out in
            for i in 0..<(count * 5) { out[i] = 1 }
            if count > 1 { out[5 + 2] = .nan }  // row 1
        }
        expectError(.numericalFailure, mentioning: "NaN/Inf") { try nan.apply(block: Matrix(rows: 2, columns: 5)) }
        #expect(try nan.apply([0, 0, 0, 0, 0]) == [1, 1, 1, 1, 1])  // a block of one has no row 1
        expectError(.numericalFailure, mentioning: "NaN/Inf") {
            try StochasticLanczosQuadrature(hessian: nan, probes: 3, steps: 2)
        }
        let stopping = try HessianOperator(dimension: 5, blockSize: 2) { _, _, _ in throw Stop() }
        #expect(throws: Stop.self) { try stopping.apply(block: Matrix(rows: 3, columns: 5)) }
        #expect(stopping.productCount == 2 && stopping.callCount == 1)
        expectError(.invalidArgument, mentioning: "rows of 5") { try stopping.apply(block: Matrix(rows: 2, columns: 4)) }
        expectError(.invalidArgument, mentioning: "blockSize") { try HessianOperator(dimension: 5, blockSize: 0) { _, _, _ in } }
        expectError(.invalidArgument, mentioning: "dimension") { try HessianOperator(dimension: 0, blockSize: 2) { _, _, _ in } }
    }

    @Test("stochastic Lanczos quadrature in lockstep: bit-identical to one probe at a time", arguments: [1, 3, 8])
    func quadratureLockstep(blockSize: Int) throws {
        let p = 40
        let (h, _) = Self.problem(p, seed: 7)
        let alone = try HessianOperator(dimension: p, product: Self.single(h))
        var calls = 0
        let block = try Self.looping(Self.single(h), dimension: p, blockSize: blockSize, calls: &calls)
        let top = try lanczosEigenpairs(try HessianOperator(h), count: 3, tolerance: 1e-12)
        let deflation = try Deflation(eigenvalues: top.eigenvalues, eigenvectorRows: top.eigenvectorRows)
        for deflate in [nil, deflation] {
            let a = try StochasticLanczosQuadrature(hessian: alone, probes: 7, steps: 12, seed: 5, deflation: deflate)
            calls = 0
            let b = try StochasticLanczosQuadrature(hessian: block, probes: 7, steps: 12, seed: 5, deflation: deflate)
            #expect(a.rules == b.rules && a.productCount == b.productCount && a.productCount == 7 * 12)
            // One block call per step per group: ⌈7 / b⌉ groups of 12 steps.
            #expect(calls == (7 + blockSize - 1) / blockSize * 12)
        }
    }

    @Test("Krylov g(H)z for several vectors in lockstep: bit-identical to one at a time, steps differing per vector")
    func krylovLockstep() throws {
        let p = 30
        let (h, _) = Self.problem(p, seed: 8)
        var rng = SeededGenerator(seed: 9)
        // Two generic vectors, a zero one (no Krylov part) and e_1: their iterations stop at different steps.
        let generic = [rng.uniformArray(p, -1, 1), rng.uniformArray(p, -1, 1)]
        let sparse = (0..<p).map { $0 == 0 ? 1.0 : 0.0 }
        let vectors = [generic[0], [Double](repeating: 0, count: p), sparse, generic[1]]
        let g: (Double) -> Double = { exp(-$0) }
        let alone = try HessianOperator(dimension: p, product: Self.single(h))
        let block = try Self.looping(Self.single(h), dimension: p, blockSize: 4)
        let each = try vectors.map { try krylovMatrixFunctions([g], hessian: alone, vector: $0, maxSteps: 25)[0] }
        let together = try krylovMatrixFunctions([g], hessian: block, vectors: vectors, maxSteps: 25).map { $0[0] }
        #expect(each == together)
        #expect(block.productCount == alone.productCount)
        #expect(block.callCount == each.map(\.steps).max())
        // And against the dense g(H) v (Jacobi, the independent route).
        let gh = Ref.spectralFunction(h, g)
        for (v, r) in zip(vectors, together) {
            var exact = [Double](repeating: 0, count: p)
            for i in 0..<p { for j in 0..<p { exact[i] += gh[i, j] * v[j] } }
            let scale = max(exact.map(abs).max() ?? 0, 1e-300)
            #expect(zip(exact, r.value).allSatisfy { abs($0 - $1) <= 1e-10 * scale })
        }
    }

    @Test("networkFluctuation with block operators: bit-identical with row-by-row blocks, to rounding with GEMM",
          arguments: [false, true])
    func networkLockstep(diagonal: Bool) throws {
        let p = 50, k = 4
        let (h, c) = Self.problem(p, seed: 11)
        let rate: LearningRate = diagonal ? .diagonal((0..<p).map { 0.1 + 0.1 * Double($0 % 3) }) : .scalar(0.15)
        func run(_ hessian: HessianOperator, _ noise: HessianOperator) throws -> NetworkFluctuation {
            try networkFluctuation(hessian: hessian, noiseOperator: noise, learningRate: rate, momentum: 0.3, k: k,
                                   probes: 9, steps: 20, batchSize: 8, tolerance: 1e-12, seed: 5)
        }
        let single = try networkFluctuation(
            hessian: try HessianOperator(dimension: p, product: Self.single(h)), noise: Self.single(c), learningRate: rate,
            momentum: 0.3, k: k, probes: 9, steps: 20, batchSize: 8, tolerance: 1e-12, seed: 5)
        var hessianCalls = 0, noiseCalls = 0
        let blockH = try Self.looping(Self.single(h), dimension: p, blockSize: 4, calls: &hessianCalls)
        let blockC = try Self.looping(Self.single(c), dimension: p, blockSize: 4, calls: &noiseCalls)
        let block = try run(blockH, blockC)
        #expect(block.topEigenvalues == single.topEigenvalues && block.topEigenvectorRows == single.topEigenvectorRows)
        #expect(block.bottomEigenvalues == single.bottomEigenvalues && block.bottomNoise == single.bottomNoise)
        #expect(block.noiseBlock == single.noiseBlock && block.fluctuationBlock == single.fluctuationBlock)
        #expect(block.excessLoss == single.excessLoss)
        #expect(block.criticalLearningRateMultiplicative == single.criticalLearningRateMultiplicative)
        #expect(block.hessianProducts == single.hessianProducts && block.noiseProducts == single.noiseProducts)
        #expect(block.noiseProducts == 2 * k + 9)
        // The noise comes in blocks: k bottom and k top vectors (one call each for k = 4), then one
        // call per group of probes (4 + 4 + 1).
        #expect(noiseCalls == 2 + 3)
        #expect(hessianCalls < block.hessianProducts)

        // GEMM blocks: the same to rounding.
        let gemm = try run(try Self.gemm(h, blockSize: 4), try Self.gemm(c, blockSize: 4))
        func close(_ a: Double, _ b: Double, _ tolerance: Double = 1e-9) -> Bool { abs(a - b) <= tolerance * abs(b) }
        #expect(zip(gemm.topEigenvalues, single.topEigenvalues).allSatisfy { close($0, $1) })
        #expect((gemm.fluctuationBlock - single.fluctuationBlock).maxAbs <= 1e-9 * single.fluctuationBlock.maxAbs)
        #expect(close(gemm.excessLoss.value, single.excessLoss.value), "\(gemm.excessLoss) vs \(single.excessLoss)")
        let m1 = try #require(gemm.criticalLearningRateMultiplicative)
        let m2 = try #require(single.criticalLearningRateMultiplicative)
        #expect(close(m1.value, m2.value), "\(m1) vs \(m2)")
    }
}
