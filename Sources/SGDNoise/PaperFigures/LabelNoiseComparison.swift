extension PaperFigures {
    /// Σ of label-noise SGD on a spectrum (diagonal A, scalar λ, no momentum) three ways: the exact
    /// theory [Thm 2], continuous time [Eq. 7] and the discrete-time Hessian approximation.
    public struct LabelNoiseComparison: Sendable {
        /// The diagonal of the exact Σ.
        public let exact: [Double]
        /// The diagonal of Σ = λσ²/(2S) (continuous time).
        public let continuousTime: [Double]
        /// The diagonal of Σ = λσ²/(S(2 − λa)) (discrete time, Hessian-shaped noise).
        public let discreteHessian: [Double]

        /// Σ for A = diag(`spectrum`), σ² = `noiseVariance`, scalar λ = `learningRate` and batch size
        /// S = `batchSize` (μ = 0), by the three formulas.
        ///
        /// - Throws: `unstable` at or past λ*; `invalidArgument` for a bad value.
        public init(spectrum: [Double], noiseVariance: Double, learningRate: Double, batchSize: Int) throws {
            let a = SymmetricOperator.diagonal(spectrum)
            exact = try labelNoise(a: a, noiseVariance: noiseVariance, learningRate: .scalar(learningRate),
                                   batchSize: batchSize).sigma.diagonalEntries
            continuousTime = try SGDNoise.continuousTime(a: a, noiseVariance: noiseVariance, learningRate: .scalar(learningRate),
                                                         batchSize: batchSize).diagonalEntries
            discreteHessian = try SGDNoise.discreteHessian(a: a, noiseVariance: noiseVariance, learningRate: .scalar(learningRate),
                                                           batchSize: batchSize).diagonalEntries
        }
    }
}
