/// Orochi: a CPU inference engine for small language models.
///
/// Folders follow the layers: Loading (safetensors, config.json), Tokenizer, Models (one file per
/// architecture), Runtime (generation, sampling, perplexity). The kernels live in the targets
/// below (OrochiKernels, COrochiKernels) and are re-exported; the benchmark harness above (OrochiBench).
@_exported import OrochiKernels

public enum Orochi {
    public static let version = "0.1.0"
}
