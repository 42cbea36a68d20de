// swift-tools-version: 6.1
//
// sgdnoise: the noise and the fluctuation of stochastic gradient descent, exactly.
// Theory: Ziyin, Liu, Mori, Ueda, "Strength of Minibatch Noise in SGD", ICLR 2022 (arXiv:2102.05375).

import PackageDescription

let package = Package(
    name: "SGDNoise",
    products: [
        // MARK: Public API
        /// The Swift module users import.
        .library(name: "SGDNoise", targets: ["SGDNoise"]),
        /// `libsgdnoise.so`: the C ABI (header `include/sgdnoise.h`) consumed by C and by the
        /// Python package. Build with `-Xswiftc -static-stdlib` (the Makefile does) so that it
        /// needs no Swift runtime on the host.
        .library(name: "sgdnoise", type: .dynamic, targets: ["SGDNoiseCABI"]),
        /// `sgdnoise-cli`: reproduce the paper's figures, predict any model, explore stability.
        .executable(name: "sgdnoise-cli", targets: ["SGDNoiseCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: Public API
        .target(
            name: "SGDNoise",
            dependencies: ["_SGDNoiseBLAS", "_SGDNoiseKernels"]
        ),
        .target(
            name: "SGDNoiseCABI",
            dependencies: ["SGDNoise", "_SGDNoiseShims", "_SGDNoiseBLAS"]
        ),
        .executableTarget(
            name: "SGDNoiseCLI",
            dependencies: ["SGDNoise", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // MARK: Implementation details (no stable API)
        .systemLibrary(
            name: "_CLAPACK",
            pkgConfig: "openblas lapacke",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        /// The BLAS/LAPACK routines SGDNoise calls, routed to the linked OpenBLAS or, at run time, to
        /// an ILP64 OpenBLAS already in the process (numpy's: one thread pool, not two).
        .target(name: "_SGDNoiseBLAS", dependencies: ["_CLAPACK"]),
        .target(name: "_SGDNoiseShims"),
        /// The noise operator's and the accumulator's memory-bound kernels, compiled for the
        /// baseline x86-64 target and for AVX2 + FMA, chosen at run time (`SGDNOISE_KERNELS`).
        .target(name: "_SGDNoiseKernels"),

        // MARK: Tests
        .testTarget(
            name: "SGDNoiseTests",
            dependencies: ["SGDNoise", "SGDNoiseCABI"]
        ),
    ]
)
