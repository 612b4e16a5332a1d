import Foundation
import OrochiKernels

// Causal self-attention with grouped key/value heads, the mixer of Llama, Mistral, Qwen2 and of
// Jamba's attention layers. For T new tokens at positions p0..<p0+T:
//
//   Q, K, V = H·Wqᵀ, H·Wkᵀ, H·Wvᵀ              [T, H·d], [T, G·d], [T, G·d]
//   RMSNorm each head of Q and K                only where the model has it (Qwen3)
//   rotate Q, K by position (RoPE)              only where the model has it (Jamba has none)
//   append K, V to this layer's cache           cache [G, C, d] ×2
//   A = softmax(Q·Kᵀ/√d)·V per query head       causal: row p sees keys 0…p (or its window)
//   X += A·Woᵀ                                  [T, D]
//
// Shape letters: T tokens, D hidden size, H query heads, G key/value heads (H/G query heads share
// one), d head size, C cache capacity. One forward for any T: a single token goes through the
// fused decode kernel (one pass over the cache with an online softmax), several through tiles
// (flash attention: two small products and an online softmax per tile, attention.c), so decode
// and prefill cannot drift apart.

/// One attention layer's weights, in their stored type (views into the checkpoint).
struct AttentionWeights {
    let q, k, v: Linear                   // [H·d, D], [G·d, D], [G·d, D]
    let o: Linear                         // [D, H·d]

    /// The weight table: `prefix` is e.g. "model.layers.3.self_attn.". Biases are taken when the
    /// config asks for them (`bias`) or the checkpoint has them (Qwen2 has q/k/v biases without
    /// saying so); `outputStd` initialises Wo in a preset.
    static func load(_ source: WeightSource, prefix p: String, dim: Int, heads: Int, kvHeads: Int, headDim: Int,
                     bias: Bool) throws -> AttentionWeights {
        let qDim = heads * headDim, kvDim = kvHeads * headDim, std = 1 / Float(dim).squareRoot()
        func linear(_ name: String, _ rows: Int, _ columns: Int) throws -> Linear {
            let w = try source.matrix(p + name + ".weight", rows: rows, columns: columns, initial: .normal(std: std))
            let b = source.has(p + name + ".bias", configured: bias)
                ? try source.vector(p + name + ".bias", shape: [rows], initial: .constant(0)) : nil
            return Linear(w, bias: b)
        }
        return AttentionWeights(q: try linear("q_proj", qDim, dim), k: try linear("k_proj", kvDim, dim),
                                v: try linear("v_proj", kvDim, dim), o: try linear("o_proj", dim, qDim))
    }

    var matrices: [WeightMatrix] { [q, k, v, o].map(\.weight) }
}

/// One layer's key/value cache: per key/value head, C rows of d, so that each head's keys are one
/// matrix; f32 or f16 elements. What a sequence keeps of its context in this layer, apart from
/// the weights (a second sequence gets a second cache).
final class KVCache {
    let type: WeightType
    let kvHeads: Int, headDim: Int, capacity: Int
    private let keyStore: FloatBuffer       // [G, C, d] of `type`
    private let valueStore: FloatBuffer     // [G, C, d] of `type`

    init(kvHeads: Int, headDim: Int, capacity: Int, type: WeightType) {
        self.type = type; self.kvHeads = kvHeads; self.headDim = headDim; self.capacity = capacity
        let floats = kvHeads * capacity * headDim * type.byteSize / 4
        keyStore = FloatBuffer(count: floats)
        valueStore = FloatBuffer(count: floats)
    }

    /// Bytes each token adds: keys and values of every head.
    var bytesPerToken: Int { 2 * kvHeads * headDim * type.byteSize }

    /// Head `g`'s rows: [C, d] of `type`.
    @inline(__always) func keys(_ g: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(keyStore.pointer) + g * capacity * headDim * type.byteSize
    }
    @inline(__always) func values(_ g: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(valueStore.pointer) + g * capacity * headDim * type.byteSize
    }

    /// Writes `headDim` floats into row `row` of a head's [C, d] block, in the cache's type.
    @inline(__always) func store(_ src: UnsafePointer<Float>, into head: UnsafeMutableRawPointer, row: Int) {
        if type == .f32 {
            (head.assumingMemoryBound(to: Float.self) + row * headDim).update(from: src, count: headDim)
        } else {
            narrowToHalf(src, into: head.assumingMemoryBound(to: UInt16.self) + row * headDim, count: headDim)
        }
    }

    /// Rows first..<first + n of a head as float32: in place (f32), or widened into `out` [n, d].
    @inline(__always) func rows(_ head: UnsafeMutableRawPointer, first: Int, count n: Int,
                                widening out: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        if type == .f32 { return UnsafePointer(head.assumingMemoryBound(to: Float.self) + first * headDim) }
        WeightMatrix(raw: UnsafeRawPointer(head) + first * headDim * 2, type: .f16, rows: n, columns: headDim).widen(into: out)
        return UnsafePointer(out)
    }

    // Snapshots hold the rows as float32 whatever the cache's type, so that a state saved with one
    // cache type loads into the other. Order: per head, its key rows then its value rows.

    func append(tokens n: Int, to payload: inout [UInt8]) {
        let row = FloatBuffer(count: headDim)
        for g in 0..<kvHeads {
            for head in [keys(g), values(g)] {
                if type == .f32 { payload.appendFloats(head.assumingMemoryBound(to: Float.self), count: n * headDim); continue }
                for r in 0..<n { payload.appendFloats(self.rows(head, first: r, count: 1, widening: row.pointer), count: headDim) }
            }
        }
    }

    func read(tokens n: Int, from reader: inout ByteReader, layer l: Int) throws {
        let row = FloatBuffer(count: headDim)
        for g in 0..<kvHeads {
            for (head, what) in [(keys(g), "keys of layer \(l)"), (values(g), "values of layer \(l)")] {
                if type == .f32 { try reader.floats(into: head.assumingMemoryBound(to: Float.self), count: n * headDim, what); continue }
                for r in 0..<n {
                    try reader.floats(into: row.pointer, count: headDim, what)
                    store(row.pointer, into: head, row: r)
                }
            }
        }
    }
}

/// Scratch of the attention mixer for up to `rows` tokens, shared by all attention layers of a model.
final class AttentionScratch {
    let rows: Int
    let q, k, v, out: FloatBuffer          // [T, H·d], [T, G·d] ×2, [T, H·d]
    /// Per thread (`slots` of them, prefill only): a tile of scores [queryBlock, keyBlock], the
    /// running maximum and sum of each query row [queryBlock] ×2, a key and a value tile widened
    /// from an f16 cache [keyBlock, d] ×2, and the key tile transposed [d, keyBlock rounded up].
    let slots: Int
    let tiles: FloatBuffer?

    static func slotFloats(headDim: Int) -> Int {
        let qb = AttentionMixer.queryBlock, kb = AttentionMixer.keyBlock
        return qb * kb + 2 * qb + 2 * kb * headDim + headDim * attentionKeyColumns(kb)
    }

    init(rows: Int, heads: Int, kvHeads: Int, headDim: Int) {
        self.rows = rows
        q = FloatBuffer(count: rows * heads * headDim); out = FloatBuffer(count: rows * heads * headDim)
        k = FloatBuffer(count: rows * kvHeads * headDim); v = FloatBuffer(count: rows * kvHeads * headDim)
        slots = max(1, BLAS.threads)
        tiles = rows > 1 ? FloatBuffer(count: slots * Self.slotFloats(headDim: headDim)) : nil
    }
}

/// One attention layer: its weights and shapes. Its KV cache is per sequence
/// (`SequenceState.caches[layer]`).
struct AttentionMixer {
    /// Tiles of prefill attention: this many query rows by this many keys.
    static let queryBlock = 128
    static let keyBlock = 256

    let heads: Int, kvHeads: Int, headDim: Int
    /// Mistral: each token sees at most this many positions (itself included).
    let window: Int?
    /// nil: no position encoding (Jamba: its Mamba layers already carry order).
    let rope: RotaryEmbedding?
    let weights: AttentionWeights
    /// This layer's index: its cache in each sequence is `caches[layer]`.
    let layer: Int
    /// Qwen3: an RMSNorm over each head's d values of Q and of K, before RoPE.
    var headNorms: HeadNorms? = nil
    /// Granite: the scores' scale (`attention_multiplier`) instead of 1/√d.
    var scale: Float? = nil
    var scoreScale: Float { scale ?? 1 / Float(headDim).squareRoot() }

    struct HeadNorms {
        let q, k: UnsafePointer<Float>      // [d] each
        let eps: Float
    }

    /// A sequence's cache for this layer.
    func makeCache(capacity: Int, type: WeightType) -> KVCache {
        KVCache(kvHeads: kvHeads, headDim: headDim, capacity: capacity, type: type)
    }

    /// X[T, D] += Attention(H[T, D]) for the T tokens of `rows`, each at its sequence's position
    /// (position + 1 ≤ C, checked by the model). Allocates nothing.
    func forward(_ h: UnsafePointer<Float>, rows: Rows, addingTo x: UnsafeMutablePointer<Float>,
                 scratch s: AttentionScratch, widen: Widening) {
        let t = rows.count, qDim = heads * headDim, kvDim = kvHeads * headDim
        let q = s.q.pointer, k = s.k.pointer, v = s.v.pointer, out = s.out.pointer
        Profiler.time(.projection) {                              // Q[T, H·d], K[T, G·d], V[T, G·d]
            Linear.together(h, rows: t, (weights.q, q), (weights.k, k), (weights.v, v), widen: widen)
        }
        Profiler.time(.rope) {
            if let n = headNorms {
                Kernels.rmsNorm(rows: t * heads, q, weight: n.q, into: q, count: headDim, eps: n.eps)
                Kernels.rmsNorm(rows: t * kvHeads, k, weight: n.k, into: k, count: headDim, eps: n.eps)
            }
            for i in 0..<t {
                let p = rows.position(i), cache = rows.sequence(i).caches[layer]!
                if let rope {
                    rope.apply(q + i * qDim, heads: heads, position: p)
                    rope.apply(k + i * kvDim, heads: kvHeads, position: p)
                }
                for g in 0..<kvHeads {                                             // cache[g, p, :] = K, V rows
                    cache.store(k + i * kvDim + g * headDim, into: cache.keys(g), row: p)
                    cache.store(v + i * kvDim + g * headDim, into: cache.values(g), row: p)
                }
            }
        }
        if let probe = Probe.active, case .run = rows { record(in: probe, q: q, k: k, rows: t) }
        Profiler.time(.attention) {
            if case let .run(sequence, p0, t) = rows, t > 1 {
                attendTiled(rows: t, start: p0, cache: sequence.caches[layer]!, scratch: s)
            } else {
                // One token per sequence (decode, or a batch of sequences): out[H·d] of each row is
                // softmax(q·Kᵀ/√d)·V per head, one fused pass over that sequence's cache.
                for i in 0..<t {
                    let p = rows.position(i), cache = rows.sequence(i).caches[layer]!
                    let first = window.map { max(0, p + 1 - $0) } ?? 0             // oldest visible position
                    attendOneToken(q: q + i * qDim, heads: heads, kvHeads: kvHeads, headDim: headDim,
                                   keys: cache.keys(0), values: cache.values(0), cacheType: cache.type, capacity: cache.capacity,
                                   first: first, count: p + 1 - first, scale: scoreScale, into: out + i * qDim)
                }
            }
        }
        Profiler.time(.projection) { weights.o(out, rows: t, into: x, accumulate: true, widen: widen) }  // X += A·Woᵀ
    }

    /// Causal attention of `rows` new tokens starting at position `p0` over the cache, tiled as
    /// flash attention is: for each head and block of query rows, the visible keys go by in blocks,
    /// S = Q·Kᵀ/√d of the tile, a running maximum and sum per row (the softmax computed online,
    /// earlier output rescaled when the maximum grows), and O += P·V. The scores never exceed one
    /// tile, whatever the context. Key/value heads are split over our threads, each with its own
    /// tiles. The products are attention.c's register-blocked tile kernels, not sgemm: with a head
    /// size of 32–128 sgemm spent much of its time packing, and OpenBLAS's SSE3 kernels (an unknown
    /// CPU, `Prescott`) took 40 % of a llama-6m prefill where these take 20 %.
    private func attendTiled(rows t: Int, start p0: Int, cache: KVCache, scratch s: AttentionScratch) {
        let parts = min(s.slots, BLAS.threads, kvHeads)
        let tiles = s.tiles!.pointer
        Parallel.run(parts: parts) { part, parts in
            let slot = tiles + part * AttentionScratch.slotFloats(headDim: headDim)
            for g in (kvHeads * part / parts)..<(kvHeads * (part + 1) / parts) {
                attendHeads(of: g, rows: t, start: p0, cache: cache, scratch: s, slot: slot)
            }
        }
    }

    /// The query heads of key/value head `g`, one tile at a time, with one thread's tiles (`slot`).
    private func attendHeads(of g: Int, rows t: Int, start p0: Int, cache: KVCache, scratch s: AttentionScratch,
                             slot: UnsafeMutablePointer<Float>) {
        let qb = Self.queryBlock, kb = Self.keyBlock
        let qDim = heads * headDim, group = heads / kvHeads, d = headDim
        let scale = scoreScale
        let q = s.q.pointer, attn = s.out.pointer
        let scores = slot                                   // [queryBlock, keyBlock]
        let rowMax = scores + qb * kb                       // [queryBlock]
        let rowSum = rowMax + qb                            // [queryBlock]
        let keyTile = rowSum + qb                           // [keyBlock, d] (f16 cache)
        let valueTile = keyTile + kb * d                    // [keyBlock, d] (f16 cache)
        let transposedKeys = valueTile + kb * d             // [d, keyBlock rounded up to 64]
        for h in g * group..<(g + 1) * group {
            var r0 = 0
            while r0 < t {
                let r1 = min(t, r0 + qb), rows = r1 - r0
                let out = attn + r0 * qDim + h * d                                       // O[rows, d], rows qDim apart
                for r in 0..<rows { (out + r * qDim).update(repeating: 0, count: d); rowMax[r] = -.infinity; rowSum[r] = 0 }
                let firstKey = window.map { max(0, p0 + r0 + 1 - $0) } ?? 0              // oldest key any row of the block sees
                let lastKey = p0 + r1 - 1
                var c0 = firstKey
                while c0 <= lastKey {
                    let c1 = min(lastKey + 1, c0 + kb), n = c1 - c0
                    let kRows = cache.rows(cache.keys(g), first: c0, count: n, widening: keyTile)
                    let vRows = cache.rows(cache.values(g), first: c0, count: n, widening: valueTile)
                    let diagonal = p0 + r0 - c0                                                // row r sees keys ≤ r + diagonal
                    attentionScores(q + r0 * qDim + h * d, queryStride: qDim, rows: rows, keys: kRows, count: n, headDim: d,
                                    scale: scale, diagonal: diagonal, transposedKeys: transposedKeys, into: scores)   // S[rows, n]
                    // P = exp(S − running max) on each row's visible keys, 0 on the others; O and the sums rescaled.
                    softmaxTile(scores, rows: rows, keys: n, firstKey: c0, firstPosition: p0 + r0, window: window,
                                rowMax: rowMax, rowSum: rowSum, out: out, outStride: qDim, headDim: d)
                    attentionValues(scores, rows: rows, keys: n, diagonal: diagonal, values: vRows, headDim: d,
                                    into: out, outStride: qDim)                                 // O += P·V
                    c0 = c1
                }
                for r in 0..<rows { Kernels.scale(out + r * qDim, by: 1 / rowSum[r], count: d) }
                r0 = r1
            }
        }
    }
}
