import Foundation

// Range and size checks of each architecture's config.json, run before any tensor is read or
// any buffer allocated: every product of sizes is overflow-checked (`Sizes`), values that must
// be positive or finite are checked by name, and the memory a model instance will allocate (KV
// cache, state, scratch, random weights) is compared with the machine's physical memory.

/// Turns a size error into a config error naming the file.
func configSizes<T>(_ path: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as SizeError {
        throw LoadError.badConfig(path: path, detail: error.description)
    }
}

/// A floating-point config value that must be finite and positive (or ≥ 0 with `allowZero`).
func checkReal(_ value: Double?, _ key: String, path: String, allowZero: Bool = false) throws {
    guard let value else { return }
    guard value.isFinite, allowZero ? value >= 0 : value > 0 else {
        throw LoadError.badConfig(path: path, detail: "'\(key)' must be a finite number \(allowZero ? "≥ 0" : "> 0"), found \(value)")
    }
}

extension LlamaConfig {
    /// Overflow and range checks of the sizes and real-valued keys; called by `validate`.
    func checkSizes(path: String) throws {
        if let m = max_position_embeddings, m <= 0 {
            throw LoadError.badConfig(path: path, detail: "'max_position_embeddings' must be positive, found \(m)")
        }
        if let w = sliding_window, w < 0 {
            throw LoadError.badConfig(path: path, detail: "'sliding_window' must be ≥ 0, found \(w)")
        }
        try checkReal(rms_norm_eps, "rms_norm_eps", path: path, allowZero: true)
        _ = try rope(path: path)
        try configSizes(path) {
            _ = try Sizes.product([vocab_size, hidden_size], "vocab_size × hidden_size")
            _ = try Sizes.product([num_attention_heads, headDim, hidden_size], "num_attention_heads × head_dim × hidden_size")
            _ = try Sizes.product([kvHeads, headDim, hidden_size], "num_key_value_heads × head_dim × hidden_size")
            _ = try Sizes.product([intermediate_size, hidden_size], "intermediate_size × hidden_size")
        }
    }

    /// Bytes a model instance allocates for a cache of `capacity` tokens: KV cache, rotary tables,
    /// decode and prefill scratch, and the weights themselves when they are random.
    func allocationBytes(capacity: Int, randomWeights: Bool, prefillChunk: Int, queryBlock: Int) throws -> Int {
        let what = "the KV cache for a context of \(capacity) tokens with its scratch"
        func m(_ xs: Int...) throws -> Int { try Sizes.product(xs, what) }
        func s(_ xs: Int...) throws -> Int { try Sizes.sum(xs, what) }
        let d = hidden_size, f = intermediate_size, v = vocab_size, l = num_hidden_layers
        let qDim = try m(num_attention_heads, headDim), kvDim = try m(kvHeads, headDim)
        let kv = try m(2, l, kvDim, capacity)
        let ropeTables = try m(capacity, headDim)
        let row = try s(m(2, d), m(2, qDim), m(2, kvDim), m(2, f))
        let decode = try s(row, capacity, v)
        let prefill = try s(m(prefillChunk, row), m(queryBlock, capacity))
        var floats = try s(kv, ropeTables, decode, prefill)
        if randomWeights {
            let layer = try s(m(2, d), m(2, qDim, d), m(2, kvDim, d), m(3, f, d))
            floats = try s(floats, m(l, layer), m(2, v, d), d)
        }
        return try m(floats, MemoryLayout<Float>.stride)
    }

    /// Refuses a capacity whose cache and scratch would not fit in physical memory.
    func checkMemory(capacity: Int, path: String, randomWeights: Bool) throws {
        guard capacity > 0 else { throw LoadError.badConfig(path: path, detail: "the context must hold at least one token, got \(capacity)") }
        try configSizes(path) {
            let bytes = try allocationBytes(capacity: capacity, randomWeights: randomWeights,
                                            prefillChunk: llamaPrefillChunk, queryBlock: AttentionMixer.queryBlock)
            try Sizes.checkFits(bytes, "the KV cache for a context of \(capacity) tokens (--context, or max_position_embeddings up to 4,096) with the activations and scratch of this configuration")
        }
    }
}

extension MambaConfig {
    /// Snapshots record how many tokens were consumed; a count beyond this is refused as corrupt
    /// (2^40 tokens: years of decoding at any speed this engine reaches).
    public static let maxPosition = 1 << 40

    /// E = expand × hidden_size (or intermediate_size), overflow-checked.
    func checkedInnerSize(path: String) throws -> Int {
        if let i = intermediate_size { return i }
        return try configSizes(path) { try Sizes.product([expand, hidden_size], "expand × hidden_size") }
    }

    /// Overflow and range checks of the sizes and real-valued keys; called by `validate`.
    func checkSizes(path: String) throws {
        try checkReal(layer_norm_epsilon, "layer_norm_epsilon", path: path, allowZero: true)
        guard hidden_size > 0 else { return }   // `validate` names it
        let e = try checkedInnerSize(path: path)
        guard e > 0, state_size > 0, conv_kernel > 0 else { return }
        if case let .value(r) = time_step_rank, r <= 0 { return }
        try configSizes(path) {
            _ = try Sizes.product([vocab_size, hidden_size], "vocab_size × hidden_size")
            _ = try Sizes.product([2, e, hidden_size], "in_proj: 2 × inner size (expand × hidden_size) × hidden_size")
            let dbc = try Sizes.sum([dtRank, try Sizes.product([2, state_size], "2 × state_size")], "time_step_rank + 2 × state_size")
            _ = try Sizes.product([dbc, e], "x_proj: (time_step_rank + 2 × state_size) × inner size")
            _ = try Sizes.product([e, dtRank], "dt_proj: inner size × time_step_rank")
            _ = try Sizes.product([e, state_size], "A_log: inner size × state_size")
            _ = try Sizes.product([conv_kernel, e], "conv1d: conv_kernel × inner size")
            let bytes = try allocationBytes(randomWeights: false, prefillChunk: mambaPrefillChunk)
            try Sizes.checkFits(bytes, "the state and scratch of this Mamba configuration")
        }
    }

    /// Bytes a model instance allocates: state, derived weights (conv filters, A), decode and
    /// prefill scratch, and the weights themselves when they are random.
    func allocationBytes(randomWeights: Bool, prefillChunk: Int) throws -> Int {
        let what = "the state and scratch of this Mamba configuration"
        func m(_ xs: Int...) throws -> Int { try Sizes.product(xs, what) }
        func s(_ xs: Int...) throws -> Int { try Sizes.sum(xs, what) }
        let d = hidden_size, n = state_size, k = conv_kernel, l = num_hidden_layers, v = vocab_size
        let inner = try intermediate_size ?? m(expand, hidden_size)
        let r = dtRank, dbc = try s(r, m(2, n))
        let perLayer = try s(m(k, inner), m(k, inner), m(2, inner, n))
        let row = try s(m(2, d), m(5, inner), dbc)
        var floats = try s(m(l, perLayer), row, v, m(prefillChunk, row))
        if randomWeights {
            let layer = try s(d, m(2, inner, d), m(k, inner), m(3, inner), m(dbc, inner), m(inner, r), m(inner, n), m(d, inner))
            floats = try s(floats, m(l, layer), m(2, v, d), d)
        }
        return try m(floats, MemoryLayout<Float>.stride)
    }
}

extension RopeScaling {
    /// llama3 scaling divides by high_freq_factor − low_freq_factor: they must differ.
    func validated(path: String) throws -> RopeScaling {
        if case let .llama3(_, low, high, _) = self, low == high {
            throw LoadError.badConfig(path: path, detail: "rope scaling 'llama3' needs low_freq_factor ≠ high_freq_factor, both are \(low)")
        }
        return self
    }
}
