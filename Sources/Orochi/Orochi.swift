/// Orochi: a CPU inference engine for small language models.
///
/// Folders follow the layers: Kernels (BLAS wrappers and vector kernels), Loading (safetensors,
/// config.json), Tokenizer, Models (one file per architecture), Runtime (generation, sampling,
/// perplexity, benchmarks).
public enum Orochi {
    public static let version = "0.1.0"
}
