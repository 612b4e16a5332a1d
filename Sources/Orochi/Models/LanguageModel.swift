import Foundation

/// One interface for every architecture: a transformer keeps a KV cache that grows with the
/// context, a state-space model keeps a fixed-size state. The runtime (generation, perplexity,
/// benchmarks) and the CLI see only this protocol.
///
/// Positions are implicit: each call continues after the tokens already consumed
/// (`position`), until `reset()`.
public protocol LanguageModel: AnyObject {
    /// What was loaded: architecture, sizes, dtypes, per-layer shapes.
    var info: ModelInfo { get }
    /// Tokens consumed since the last reset.
    var position: Int { get }
    /// The most tokens this instance can hold (the KV cache is sized for it); `Int.max` when unbounded.
    var contextCapacity: Int { get }

    /// Consumes `tokens` in one batch. When `allLogits` is given it receives the logits of every
    /// position, row-major [tokens.count, vocab]; `lastLogits` always holds those of the last token.
    func prefill(_ tokens: [Int], allLogits: UnsafeMutablePointer<Float>?) throws
    /// Consumes one token and leaves its logits in `lastLogits`. Allocates nothing.
    func decode(_ token: Int) throws
    /// Logits [vocab] of the most recently consumed token; valid until the next call.
    var lastLogits: UnsafeBufferPointer<Float> { get }
    /// Forgets all consumed tokens.
    func reset()

    /// Bytes of cache or state holding the current context (KV cache up to `position`, or the SSM state).
    var stateBytes: Int { get }
    /// Bytes of cache or state needed to hold `tokens` tokens of context.
    func stateBytes(forTokens tokens: Int) -> Int

    /// Serialises the cache or state after `position` tokens (see `Snapshot`).
    func saveState() -> [UInt8]
    /// Restores a state written by `saveState()` of the same model.
    func loadState(_ bytes: [UInt8]) throws

    // Several sequences on one set of weights (serving).

    /// A new, empty context of this model: its own KV cache (sized `contextCapacity`) or state.
    func makeSequence() -> SequenceState
    /// The sequence that `prefill`, `decode`, `reset`, `position`, `lastLogits` and the snapshots
    /// work on. Assigning another one of this model's sequences switches context at no cost.
    var sequence: SequenceState { get set }
    /// Consumes one token for each of `sequences` (distinct sequences of this model, each with
    /// room for one more token) in one pass over the weights: matrix-matrix products over the
    /// batch, attention and scan per sequence. Each sequence's `lastLogits` receive its row; the
    /// result equals `decode` on each in turn. Allocates only when the batch is the largest yet.
    func decode(batch tokens: [Int], sequences: [SequenceState]) throws
}

extension LanguageModel {
    /// Prefill without the logits of every position.
    public func prefill(_ tokens: [Int]) throws { try prefill(tokens, allLogits: nil) }
}

/// A description of a loaded model, printed by `orochi inspect` and recorded by benchmarks.
public struct ModelInfo: Sendable {
    public var architecture: String          // e.g. "LlamaForCausalLM"
    public var modelType: String             // config.json "model_type"
    public var vocabSize: Int
    public var hiddenSize: Int
    public var layerCount: Int
    public var parameterCount: Int
    public var maxContext: Int               // the model's own limit (max_position_embeddings), Int.max if none
    public var fileDTypes: [String: Int]     // dtype in the checkpoint → tensor count
    public var details: [(String, String)]   // architecture-specific lines: shapes, heads, state size …
    /// An identity for snapshots: architecture, shapes and a hash of part of the weights.
    public var fingerprint: UInt64
    /// Bytes of weight matrices a decoded token reads, as stored: every layer matrix (only the
    /// routed experts), the lm_head, one embedding row.
    public var decodeWeightBytes = 0
}

/// How a model is loaded: its cache size, and how weights and cache are held in memory.
public struct LoadOptions: Sendable {
    /// Tokens of context to allocate (nil: the model's default).
    public var context: Int?
    /// Weight matrices as stored in the checkpoint (default) or widened to float32.
    public var weights: WeightStorage
    /// Element type of the attention KV cache: f32 (default, exact) or f16 (half the bytes per token).
    public var kvCache: WeightType
    /// The checkpoint's bytes read into huge pages (default) or mapped from the file.
    public var weightMemory: WeightMemory
    public init(context: Int? = nil, weights: WeightStorage = .asStored, kvCache: WeightType = .f32,
                weightMemory: WeightMemory = .hugePages) {
        self.context = context; self.weights = weights; self.kvCache = kvCache; self.weightMemory = weightMemory
    }
}
