import SGDNoise
import _SGDNoiseShims

// C section 11

/// The spectral density of the symmetric operator of `hessian` (dimension d) by stochastic Lanczos
/// quadrature (docs/theory.md section 8): `probes` >= 1 Rademacher probes z (seeded by `seed`),
/// `steps` >= 1 Lanczos steps each; every probe's Gauss rule (Ritz values theta_l, weights
/// |z|^2 tau_l^2 / probes) is appended to out_nodes and out_weights (each room for
/// probes * min(steps, d) doubles; out_info->nodes says how many were written). The weights sum
/// to d exactly (up to rounding), and sum_l weight_l phi(node_l) estimates
/// Tr phi(H) = sum_i phi(h_i), exactly per probe (z^T phi(H) z / probes) for polynomials phi of
/// degree < 2 steps. out_info (required)
/// also receives Hutchinson's Tr H with its standard error over the probes and the products used.
/// The result can be passed as a weighted spectrum (SGDNOISE_LAYOUT_WEIGHTED_SPECTRUM).
@c public func sgdnoise_spectral_density(
    _ d: Int, _ hessian: sgdnoise_matvec_callback?, _ context: UnsafeMutableRawPointer?, _ probes: Int, _ steps: Int,
    _ seed: UInt64, _ out_nodes: UnsafeMutablePointer<Double>?, _ out_weights: UnsafeMutablePointer<Double>?,
    _ out_info: UnsafeMutablePointer<sgdnoise_spectral_density_info>?
) -> sgdnoise_status {
    guarded { () throws(SGDNoiseError) in
        let nodes = try Arguments.output(out_nodes, "out_nodes")
        let weights = try Arguments.output(out_weights, "out_weights")
        let info = try Arguments.output(out_info, "out_info")
        let infoSize = try Results.callerSize(info, "out_info", "sgdnoise_spectral_density_info")
        try Arguments.size(d, "d", max: 1 << 40)
        try Arguments.size(probes, "probes")
        try Arguments.size(steps, "steps")
        _ = try Arguments.count(probes, min(steps, d), "out_nodes")
        let h = try core { try HessianOperator(dimension: d, product: try product(hessian, context, d, "hessian")) }
        let quadrature = try core { try StochasticLanczosQuadrature(hessian: h, probes: probes, steps: steps, seed: seed) }
        let trace = try core { try quadrature.traceEstimate(of: { $0 }) }
        let spectrum = quadrature.spectrum
        Arguments.write(spectrum.nodes, to: nodes)
        Arguments.write(spectrum.weights, to: weights)
        Results.write(sgdnoise_spectral_density_info(
            size: 0, nodes: Int64(spectrum.nodes.count), trace: trace.value, trace_stderr: trace.standardError,
            products: Int64(quadrature.productCount)), to: info, callerSize: infoSize)
    }
}
