/// The exact stationary prediction of a linear-regression model of docs/theory.md §4.
///
/// Matrices come back dense, or as their diagonals when every input was given by a spectrum
/// (`SymmetricOperator.diagonal`).
public struct Prediction: Sendable {
    /// Σ = lim cov(w_t), the fluctuation around the stationary mean.
    public let sigma: SymmetricOperator
    /// C, the gradient-noise covariance at stationarity (its Σ-dependent part included).
    public let noise: SymmetricOperator
    /// The stationary mean of w (w* for the models with one; zeros for label noise, where w is
    /// measured from the minimum).
    public let mean: [Double]
    /// E[L(w)] at stationarity (the training objective, regulariser included for L2).
    public let trainLoss: Double
    /// E[½(w − u)ᵀA(w − u)] at stationarity (clean labels).
    public let testLoss: Double
    /// κ as the paper defines it for this model, where it does.
    public let kappa: Double?
    /// The critical learning rate λ* for these batch size and momentum (for a matrix learning
    /// rate Λ: the largest c such that cΛ is stable). nil where not known.
    public let criticalLearningRate: Double?
    /// Tr[MΣ], the scalar that couples the noise to the fluctuation.
    public let couplingTrace: Double
    /// The noise power entering flat directions (zero eigenvalues of the Hessian), where the
    /// parameters random-walk; 0 when there are none.
    public let flatDirectionNoise: Double
}

extension Prediction {
    /// `self`, after checking that Σ, C and the mean are finite (`numericalFailure` otherwise):
    /// every model returns its prediction through this check, whatever face called it.
    func checkedFinite() throws(SGDNoiseError) -> Prediction {
        try Validation.finiteResult(sigma.isFinite && noise.isFinite && mean.allSatisfy(\.isFinite))
        return self
    }
}
