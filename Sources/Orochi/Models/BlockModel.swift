import Foundation
import OrochiKernels

// One model for every architecture, over blocks (llama2.c's run.c, llama.cpp's graph builders):
//
//   x = embed[token]                                         X [T, D]
//   for each block:
//       x = x + mixer(norm(x))            attention (a KV cache) or Mamba (a conv and SSM state)
//       x = x + feedForward(norm(x))      SwiGLU or a mixture of experts; Mamba-1 has none
//   logits = norm_f(x)·W_lmᵀ              [T, V] or the last row [V]
//
// An architecture (Llama.swift, Mamba.swift, Jamba.swift) decodes its config, names its tensors
// and builds the list of blocks (`Architecture`). Everything else is written here once: sequence
// handling, workspaces, state sizes, snapshots, room checks, the finite check's weight scan and a
// trace's decode plan.
//
// Shape letters: T tokens in a pass, D hidden size, V vocabulary.

/// One residual block: a pre-norm mixer, then an optional pre-norm feed-forward.
struct Block {
    enum Mixer {
        case attention(AttentionMixer)    // weights (the KV cache is per sequence)
        case mamba(MambaMixer)            // weights (the conv and SSM state are per sequence)
        case mamba2(Mamba2Mixer)          // weights (the conv and SSM state are per sequence)
    }
    enum FeedForward {
        case dense(SwiGLU)
        case experts(MixtureOfExperts)
        case gelu(GELUMLP)
    }
    let mixerNorm: Norm
    let mixer: Mixer
    let feedForward: (norm: Norm, block: FeedForward)?
    /// Granite: each branch's output is scaled by this before it joins the residual stream.
    var residualScale: Float = 1
}

/// A config.json of an architecture Orochi runs (LlamaConfig, MambaConfig, JambaConfig …).
public protocol ModelConfiguration: Decodable, Sendable {}

/// A config.json that builds a model: the architecture's one entry point.
protocol Architecture: ModelConfiguration {
    /// Builds the blocks from `source` (checkpoint or random weights), after checking the config.
    func blueprint(source: WeightSource, configPath: String, context: Int?, kvCache: WeightType) throws -> Blueprint
}

/// What an architecture hands to the shared model.
struct Blueprint {
    var architecture: String                // e.g. "LlamaForCausalLM"
    var modelType: String
    var derived: [FloatBuffer] = []         // weights computed at load (conv filters, A), kept alive here
    var embedding: WeightMatrix             // [V, D]
    var blocks: [Block]
    var finalNorm: Norm
    var eps: Float
    /// GPT-2: learned absolute positions [P, D], added to the token's embedding; P bounds the context.
    var positions: UnsafePointer<Float>? = nil
    /// Granite: the embeddings are scaled by this (`embedding_multiplier`).
    var embeddingScale: Float = 1
    var lmHead: Linear                      // [V, D] (the embedding when tied)
    /// Tokens a sequence holds; Int.max when no block has attention.
    var contextCapacity: Int
    /// The model's own limit (max_position_embeddings), Int.max if none.
    var maxContext: Int
    var kvCache: WeightType
    /// Tokens per prefill pass: the rows of the prefill workspace.
    var prefillChunk: Int
    /// Names the shapes in snapshots (a snapshot of another shape is refused by it).
    var identity: String
    var snapshotLayout: SnapshotLayout = .perLayer
    /// Shapes hashed, with a sample of the embedding, into the fingerprint.
    var fingerprintText: String
    /// `inspect`'s architecture-specific lines, given what the shared model works out.
    var details: (Facts) -> [(String, String)]

    /// Sizes the shared model works out from the blocks, for the details.
    struct Facts {
        var matrices: [WeightMatrix]
        /// Bytes of the weight matrices a decoded token reads (the routed experts only).
        var decodeWeightBytes: Int
        /// Bytes of every fixed-size state (Mamba layers) of a sequence.
        var fixedStateBytes: Int
        /// Bytes a token adds to a sequence's KV caches.
        var bytesPerToken: Int
        /// "f16, f32; huge pages …": the matrices' types and where the weights sit.
        var storage: String
    }
}

/// The order of a snapshot's payload: each layer's cache rows or conv and SSM state in turn
/// (Llama, Jamba), or every conv state, then every SSM state (Mamba, as its snapshots have been
/// written since the first version). The logits follow either way.
enum SnapshotLayout { case perLayer, convsThenStates }

public final class BlockModel: LanguageModel {
    public let info: ModelInfo
    public let contextCapacity: Int
    /// The sequence prefill and decode work on; `makeSequence()` makes more.
    public var sequence: SequenceState {
        willSet { precondition(newValue.owner == ObjectIdentifier(self), "a sequence of another model") }
    }
    public var position: Int { sequence.position }

    let dim: Int, vocab: Int, eps: Float
    let prefillChunk: Int

    // Weights (kept alive by `source` and `derived`); caches and states are in the sequences.
    let source: WeightSource
    private let derived: [FloatBuffer]
    let embedding: WeightMatrix             // [V, D]
    let blocks: [Block]
    let finalNorm: Norm
    let positions: UnsafePointer<Float>?    // [P, D]
    let embeddingScale: Float
    let lmHead: Linear                      // [V, D]
    let widen: Widening
    let cacheType: WeightType
    let identity: String
    let snapshotLayout: SnapshotLayout
    /// Bytes of every Mamba layer's state, and bytes each token adds to the attention layers' caches.
    let fixedStateBytes: Int, bytesPerToken: Int

    // Scratch: one token (decode), allocated here; a prefill chunk, on first prefill; a batch of
    // sequences and their logits [B, V], on the first batch of that size.
    let decodeSpace: Workspace
    var prefillSpace: Workspace?
    let batchScratch = BatchScratch()

    /// Loads a Hugging Face directory whose config.json is `A`'s.
    static func load<A: Architecture>(_ architecture: A.Type, directory: URL, options: LoadOptions) throws -> BlockModel {
        let configURL = directory.appendingPathComponent("config.json")
        let config = try readJSONConfig(A.self, from: configURL)
        if let context = options.context, context <= 0 {
            throw LoadError.badConfig(path: configURL.path, detail: "context must be positive, got \(context)")
        }
        let checkpoint = try Checkpoint(directory: directory, memory: options.weightMemory)
        return try BlockModel(config: config, source: SourceWeights(checkpoint, storage: options.weights),
                              configPath: configURL.path, context: options.context, kvCache: options.kvCache)
    }

    init(config: any Architecture, source: WeightSource, configPath: String, context: Int?, kvCache: WeightType) throws {
        guard kvCache != .bf16 else { throw LoadError.badConfig(path: configPath, detail: "the KV cache can be f32 or f16, not bf16") }
        let plan = try config.blueprint(source: source, configPath: configPath, context: context, kvCache: kvCache)
        self.source = source
        derived = plan.derived
        embedding = plan.embedding; blocks = plan.blocks; finalNorm = plan.finalNorm; lmHead = plan.lmHead
        positions = plan.positions
        embeddingScale = plan.embeddingScale
        dim = plan.embedding.columns; vocab = plan.embedding.rows; eps = plan.eps
        contextCapacity = plan.contextCapacity
        prefillChunk = plan.prefillChunk
        cacheType = kvCache
        identity = plan.identity
        snapshotLayout = plan.snapshotLayout

        var matrices = [embedding, lmHead.weight]
        var fixed = 0, perToken = 0, unroutedExperts = 0
        for block in blocks {
            switch block.mixer {
            case let .attention(a): matrices += a.weights.matrices; perToken += 2 * a.kvHeads * a.headDim * kvCache.byteSize
            case let .mamba(m): matrices += m.weights.matrices; fixed += m.stateBytes
            case let .mamba2(m): matrices += m.weights.matrices; fixed += m.stateBytes
            }
            switch block.feedForward?.block {
            case let .dense(mlp)?: matrices += mlp.matrices
            case let .gelu(mlp)?: matrices += mlp.matrices
            case let .experts(moe)?:
                matrices += moe.matrices
                // A decoded token reads only the experts it is routed to.
                unroutedExperts += moe.experts.dropFirst(moe.topK).reduce(0) { $0 + $1.matrices.reduce(0) { $0 + $1.bytes } }
            case nil: break
            }
        }
        fixedStateBytes = fixed; bytesPerToken = perToken
        widen = Widening(matrices: matrices)
        decodeSpace = Self.workspace(rows: 1, dim: plan.embedding.columns, blocks: plan.blocks)
        sequence = Self.newSequence(plan.blocks, capacity: plan.contextCapacity, cacheType: kvCache, vocab: plan.embedding.rows)

        let decodeBytes = decodedWeightBytes(matrices: matrices, embedding: embedding, lmHead: lmHead) - unroutedExperts
        let facts = Blueprint.Facts(matrices: matrices, decodeWeightBytes: decodeBytes, fixedStateBytes: fixed, bytesPerToken: perToken,
                                    storage: Set(matrices.map(\.type.rawValue)).sorted().joined(separator: ", ") + "; " + source.placement)
        var printBytes = Array(plan.fingerprintText.utf8)
        InputSide.fingerprintSample(embedding, into: &printBytes)
        info = ModelInfo(
            architecture: plan.architecture, modelType: plan.modelType,
            vocabSize: vocab, hiddenSize: dim, layerCount: blocks.count, parameterCount: source.parameterCount,
            maxContext: plan.maxContext, fileDTypes: source.dtypeCounts, details: plan.details(facts),
            fingerprint: fnv1a(printBytes), decodeWeightBytes: decodeBytes)
        sequence.owner = ObjectIdentifier(self)
    }

    /// From a config in code (benchmark presets, tests): seeded random weights when `checkpoint` is
    /// nil (`randomWeights` f16 or bf16 narrows their matrices), else the checkpoint's as stored.
    public convenience init(config: some ModelConfiguration, checkpoint: Checkpoint?, configPath: String, context: Int? = nil,
                            randomSeed: UInt64 = 0, randomWeights: WeightType = .f32, kvCache: WeightType = .f32) throws {
        guard let config = config as? any Architecture else { throw ModelError.unsupported("\(type(of: config)) builds no model") }
        let source: WeightSource = checkpoint.map { SourceWeights($0, storage: .asStored) }
            ?? RandomWeights(seed: randomSeed, storage: randomWeights)
        try self.init(config: config, source: source, configPath: configPath, context: context, kvCache: kvCache)
    }

    // MARK: Sequences — per attention block a KV cache, per Mamba block a conv and SSM state.

    private static func newSequence(_ blocks: [Block], capacity: Int, cacheType: WeightType, vocab: Int) -> SequenceState {
        var caches: [KVCache?] = [], states: [MambaState?] = []
        for block in blocks {
            switch block.mixer {
            case let .attention(a): caches.append(a.makeCache(capacity: capacity, type: cacheType)); states.append(nil)
            case let .mamba(m): caches.append(nil); states.append(m.makeState())
            case let .mamba2(m): caches.append(nil); states.append(m.makeState())
            }
        }
        return SequenceState(caches: caches, states: states, vocab: vocab)
    }

    public func makeSequence() -> SequenceState {
        let s = Self.newSequence(blocks, capacity: contextCapacity, cacheType: cacheType, vocab: vocab)
        s.owner = ObjectIdentifier(self)
        return s
    }

    /// Scratch for `rows` tokens: the residual stream and what each kind of block present needs.
    /// Blocks of one kind share their shapes (one config builds them all).
    static func workspace(rows: Int, dim: Int, blocks: [Block]) -> Workspace {
        var attention: AttentionScratch?, mamba: MambaScratch?, mamba2: Mamba2Scratch?, ffn = 0, experts = 0
        for block in blocks {
            switch block.mixer {
            case let .attention(a) where attention == nil:
                attention = AttentionScratch(rows: rows, heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim)
            case let .mamba(m) where mamba == nil:
                mamba = MambaScratch(rows: rows, inner: m.inner, dbc: m.rank + 2 * m.stateSize)
            case let .mamba2(m) where mamba2 == nil:
                mamba2 = Mamba2Scratch(rows: rows, shape: m.shape, chunk: m.chunk)
            default: break
            }
            switch block.feedForward?.block {
            case let .dense(mlp)?: ffn = max(ffn, mlp.ffn)
            case let .gelu(mlp)?: ffn = max(ffn, mlp.ffn)
            case let .experts(moe)?:
                ffn = max(ffn, moe.experts[0].ffn, moe.shared?.ffn ?? 0); experts = max(experts, moe.experts.count)
            case nil: break
            }
        }
        return Workspace(rows: rows, dim: dim, scaledBranches: blocks.contains { $0.residualScale != 1 },
                         attention: attention, mamba: mamba, mamba2: mamba2,
                         feedForward: ffn > 0 ? FeedForwardScratch(rows: rows, dim: dim, ffn: ffn, experts: experts) : nil)
    }

    public var lastLogits: UnsafeBufferPointer<Float> { sequence.lastLogits }

    public func reset() { sequence.reset() }

    /// Fixed bytes (the Mamba blocks' states) plus bytes per token (the attention blocks' caches).
    public func stateBytes(forTokens tokens: Int) -> Int { fixedStateBytes + bytesPerToken * tokens }
    public var stateBytes: Int { stateBytes(forTokens: position) }

    // MARK: The forward pass — one path for a decoded token, a batch of sequences and a prefill chunk.

    /// Decodes one token: matrix-vector products, the fused attention kernel or one scan step; no allocation.
    public func decode(_ token: Int) throws {
        try checkRoom(for: 1)
        try InputSide.check(token, vocab: vocab)
        forward(CollectionOfOne(token), rows: .run(sequence, start: position, count: 1), in: decodeSpace, allLogits: nil)
    }

    /// One token for each of several sequences: projections, MLPs and experts as matrix-matrix
    /// products over the batch, attention, conv and scan per sequence.
    public func decode(batch tokens: [Int], sequences: [SequenceState]) throws {
        try InputSide.checkBatch(tokens, sequences, of: self, vocab: vocab, capacity: contextCapacity)
        let (space, batchLogits) = batchScratch.prepare(rows: tokens.count, vocab: vocab) {
            Self.workspace(rows: $0, dim: dim, blocks: blocks)
        }
        forward(tokens, rows: .batch(sequences), in: space, allLogits: batchLogits)
        InputSide.scatter(batchLogits, to: sequences, vocab: vocab)
    }

    /// Prefills in chunks of `prefillChunk` tokens: matrix-matrix products, tiled attention, the scan over time.
    public func prefill(_ tokens: [Int], allLogits: UnsafeMutablePointer<Float>?) throws {
        try checkRoom(for: tokens.count)
        try InputSide.check(tokens, vocab: vocab)
        let space = prefillSpace ?? Self.workspace(rows: prefillChunk, dim: dim, blocks: blocks)
        prefillSpace = space
        InputSide.inChunks(tokens, chunk: prefillChunk, vocab: vocab, allLogits: allLogits) {
            forward($0, rows: .run(sequence, start: position, count: $0.count), in: space, allLogits: $1)
        }
    }

    /// The context must hold `count` more tokens (an unbounded state always does).
    @inline(__always)
    func checkRoom(for count: Int) throws {
        guard contextCapacity == Int.max || position + count <= contextCapacity else {
            throw ModelError.contextOverflow(requested: position + count, capacity: contextCapacity)
        }
    }

    /// T = tokens.count tokens (at most the workspace's rows): consecutive tokens of one sequence,
    /// or one token of each sequence of a batch (`rows`). With `allLogits` [T, V] every row's
    /// logits go there; the last row's always go to its sequence.
    func forward<C: Collection<Int>>(_ tokens: C, rows: Rows, in ws: Workspace, allLogits: UnsafeMutablePointer<Float>?) {
        let t = tokens.count, x = ws.x.pointer, xb = ws.xb.pointer
        Profiler.time(.embedding) {
            InputSide.embed(tokens, table: embedding, into: x)                                          // X[T, D]
            if let positions {                                                                          // X += P[position]
                for i in 0..<t { Kernels.add(positions + rows.position(i) * dim, into: x + i * dim, count: dim) }
            }
            if embeddingScale != 1 { Kernels.scale(x, by: embeddingScale, count: t * dim) }
        }
        for block in blocks {
            // A branch adds to X, or, when the block scales its branches (Granite), to a zeroed
            // buffer that is then added scaled.
            let scaled = block.residualScale != 1
            let branch = scaled ? ws.branch!.pointer : x
            if scaled { branch.update(repeating: 0, count: t * dim) }
            Profiler.time(.norm) { block.mixerNorm(rows: t, x, into: xb, count: dim, eps: eps) }
            switch block.mixer {                                                                       // X += Mixer(H)
            case let .attention(a): a.forward(xb, rows: rows, addingTo: branch, scratch: ws.attention!, widen: widen)
            case let .mamba(m): m.forward(xb, rows: rows, addingTo: branch, scratch: ws.mamba!, widen: widen)
            case let .mamba2(m): m.forward(xb, rows: rows, addingTo: branch, scratch: ws.mamba2!, widen: widen)
            }
            if scaled { Self.addScaled(branch, block.residualScale, into: x, count: t * dim) }
            guard let (norm, feedForward) = block.feedForward else { continue }
            let scratch = ws.feedForward!
            if scaled { branch.update(repeating: 0, count: t * dim) }
            Profiler.time(.norm) { norm(rows: t, x, into: xb, count: dim, eps: eps) }
            Profiler.time(.mlp) {                                                                      // X += FFN(H)
                switch feedForward {
                case let .dense(mlp):
                    mlp.forward(xb, rows: t, into: branch, accumulate: true, gateBuffer: scratch.gate.pointer,
                                upBuffer: scratch.up.pointer, widen: widen)
                case let .experts(moe): moe.forward(xb, rows: t, addingTo: branch, scratch: scratch, widen: widen)
                case let .gelu(mlp): mlp.forward(xb, rows: t, addingTo: branch, buffer: scratch.gate.pointer, widen: widen)
                }
            }
            if scaled { Self.addScaled(branch, block.residualScale, into: x, count: t * dim) }
        }
        Profiler.time(.lmHead) {
            OutputHead.logits(hidden: x, rows: t, dim: dim, finalNorm: finalNorm, eps: eps, lmHead: lmHead,
                              scratch: xb, allLogits: allLogits, lastLogits: rows.sequence(t - 1).logits.pointer,
                              widen: widen)                                                    // logits [T, V] or [V]
        }
        rows.advance()
    }

    /// x[i] += scale · branch[i].
    private static func addScaled(_ branch: UnsafePointer<Float>, _ scale: Float, into x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] += scale * branch[i] }
    }

    // MARK: Snapshots — the cache rows up to `position` (always float32) and the states, in the
    // order of `snapshotLayout`; then the logits, so that sampling can continue at once.

    private func payloadBytes(tokens: Int) -> Int {
        blocks.reduce(vocab * 4 + fixedStateBytes) { total, block in
            guard case let .attention(a) = block.mixer else { return total }
            return total + 2 * a.kvHeads * a.headDim * 4 * tokens
        }
    }

    public func saveState() -> [UInt8] {
        var payload: [UInt8] = []
        payload.reserveCapacity(payloadBytes(tokens: position))
        switch snapshotLayout {
        case .perLayer:
            for (cache, state) in zip(sequence.caches, sequence.states) {
                if let cache { cache.append(tokens: position, to: &payload) }
                if let state {
                    payload.appendFloats(state.conv.pointer, count: state.conv.count)
                    state.appendSSM(to: &payload)
                }
            }
        case .convsThenStates:
            for cache in sequence.caches { cache?.append(tokens: position, to: &payload) }
            for state in sequence.states { if let state { payload.appendFloats(state.conv.pointer, count: state.conv.count) } }
            for state in sequence.states { state?.appendSSM(to: &payload) }
        }
        payload.appendFloats(sequence.logits.pointer, count: vocab)
        return StateArchive(identity: identity, fingerprint: info.fingerprint, position: position, payload: payload).encoded()
    }

    public func loadState(_ bytes: [UInt8]) throws {
        let archive = try StateArchive.decode(bytes, expecting: identity, fingerprint: info.fingerprint)
        let n = archive.position
        guard n <= min(contextCapacity, MambaConfig.maxPosition) else {
            if contextCapacity == Int.max { throw SnapshotError.corrupt(detail: "position \(n) exceeds \(MambaConfig.maxPosition) tokens") }
            throw SnapshotError.tooLong(tokens: n, capacity: contextCapacity)
        }
        let expected = payloadBytes(tokens: n)
        guard archive.payload.count == expected else {
            let what = bytesPerToken == 0 ? "this model's state and logits" : fixedStateBytes == 0
                ? "\(n) tokens of this model's KV cache and its logits" : "\(n) tokens of this model's caches, its states and its logits"
            throw SnapshotError.corrupt(detail: "payload has \(archive.payload.count) bytes, \(what) need \(expected)")
        }
        var reader = ByteReader(archive.payload)
        switch snapshotLayout {
        case .perLayer:
            for (l, (cache, state)) in zip(sequence.caches, sequence.states).enumerated() {
                if let cache { try cache.read(tokens: n, from: &reader, layer: l) }
                if let state {
                    try reader.floats(into: state.conv.pointer, count: state.conv.count, "conv state of layer \(l)")
                    try state.readSSM(from: &reader, layer: l)
                }
            }
        case .convsThenStates:
            for (l, cache) in sequence.caches.enumerated() { try cache?.read(tokens: n, from: &reader, layer: l) }
            for state in sequence.states { if let state { try reader.floats(into: state.conv.pointer, count: state.conv.count, "conv state") } }
            for (l, state) in sequence.states.enumerated() { try state?.readSSM(from: &reader, layer: l) }
        }
        try reader.floats(into: sequence.logits.pointer, count: vocab, "logits")
        sequence.position = n
    }
}
