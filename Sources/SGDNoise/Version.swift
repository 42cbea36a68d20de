/// The version of sgdnoise.
public enum SGDNoiseVersion {
    /// Semantic version of the library (also `sgdnoise_version()` and `sgdnoise.__version__`).
    public static let string = "1.0.0"
}
