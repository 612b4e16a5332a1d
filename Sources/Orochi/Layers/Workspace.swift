import Foundation
import OrochiKernels

/// Scratch for one forward pass of up to `rows` tokens: the residual stream X and the normed
/// input H, and the scratch of each kind of block the model has. A model keeps one for decode
/// (one row, allocated at load, so that decode allocates nothing) and one for prefill chunks
/// (allocated on the first prefill).
final class Workspace {
    let rows: Int
    let x, xb: FloatBuffer                          // [T, D] ×2
    /// [T, D]: a branch's output before it is scaled into X (Granite's residual multiplier).
    let branch: FloatBuffer?
    let attention: AttentionScratch?
    let mamba: MambaScratch?
    let mamba2: Mamba2Scratch?
    let feedForward: FeedForwardScratch?

    init(rows: Int, dim: Int, scaledBranches: Bool = false, attention: AttentionScratch? = nil, mamba: MambaScratch? = nil,
         mamba2: Mamba2Scratch? = nil, feedForward: FeedForwardScratch? = nil) {
        self.rows = rows
        x = FloatBuffer(count: rows * dim); xb = FloatBuffer(count: rows * dim)
        branch = scaledBranches ? FloatBuffer(count: rows * dim) : nil
        self.attention = attention; self.mamba = mamba; self.mamba2 = mamba2; self.feedForward = feedForward
    }
}

/// A batched decode's scratch: a workspace of at least B rows and the batch's logits [B, V],
/// made on the first batch of that size (a model keeps one; decode and prefill keep their own).
final class BatchScratch {
    private var space: Workspace?
    private var logits: FloatBuffer?

    func prepare(rows: Int, vocab: Int, make: (Int) -> Workspace) -> (Workspace, UnsafeMutablePointer<Float>) {
        if let space, let logits, space.rows >= rows { return (space, logits.pointer) }
        let space = make(rows), logits = FloatBuffer(count: rows * vocab)
        self.space = space; self.logits = logits
        return (space, logits.pointer)
    }
}

/// The cache capacity of a model with attention layers: the requested context, or the model's
/// limit up to 4,096 tokens.
func cacheCapacity(requested: Int?, maxContext: Int, path: String) throws -> Int {
    if let requested {
        guard requested > 0 else { throw LoadError.badConfig(path: path, detail: "context must be positive, got \(requested)") }
        guard requested <= maxContext else {
            throw LoadError.badConfig(path: path, detail: "requested context \(requested) exceeds max_position_embeddings \(maxContext)")
        }
        return requested
    }
    return min(maxContext, 4096)
}

/// Weight bytes a decoded token reads: every layer matrix and the lm_head once, one row of the
/// embedding (`matrices` starts with the embedding and the lm_head, as every model lists them).
func decodedWeightBytes(matrices: [WeightMatrix], embedding: WeightMatrix, lmHead: Linear) -> Int {
    matrices.dropFirst(2).reduce(lmHead.weight.bytes) { $0 + $1.bytes } + embedding.rowBytes
}
