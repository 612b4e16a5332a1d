import Foundation
import OrochiKernels

/// What one sequence keeps of its context, apart from the weights (llama2.c's `RunState`, per
/// sequence): per attention layer a KV cache that grows with the context, per Mamba layer a
/// fixed conv and SSM state, the number of tokens consumed, and the logits of the last one.
/// A model serves several sequences by switching `LanguageModel.sequence`, or all of them in one
/// step with `decode(batch:sequences:)`.
public final class SequenceState {
    /// Tokens consumed since the last reset.
    public internal(set) var position = 0
    let caches: [KVCache?]                  // [layers]: a cache where the layer is attention
    let states: [MambaState?]               // [layers]: a state where the layer is Mamba
    let logits: FloatBuffer                 // [V]
    /// The model that made it (sequences of another model are refused); set by the model.
    var owner: ObjectIdentifier?

    init(caches: [KVCache?], states: [MambaState?], vocab: Int) {
        self.caches = caches; self.states = states
        logits = FloatBuffer(count: vocab)
    }

    /// Logits [V] of the most recently consumed token.
    public var lastLogits: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: logits.pointer, count: logits.count) }

    /// Forgets every consumed token (the caches' rows are simply overwritten later).
    public func reset() {
        position = 0
        for state in states { state?.reset() }
    }
}

/// Which sequence and position each row of a forward pass belongs to: T consecutive tokens of
/// one sequence (a prefill chunk, or one decoded token), or one token of each of B sequences
/// (a batched decode step).
enum Rows {
    case run(SequenceState, start: Int, count: Int)
    case batch([SequenceState])

    var count: Int {
        switch self {
        case let .run(_, _, count): return count
        case let .batch(sequences): return sequences.count
        }
    }
    @inline(__always) func sequence(_ i: Int) -> SequenceState {
        switch self {
        case let .run(sequence, _, _): return sequence
        case let .batch(sequences): return sequences[i]
        }
    }
    /// After the forward pass: each sequence is past its rows.
    func advance() {
        switch self {
        case let .run(sequence, _, count): sequence.position += count
        case let .batch(sequences): for s in sequences { s.position += 1 }
        }
    }
    @inline(__always) func position(_ i: Int) -> Int {
        switch self {
        case let .run(_, start, _): return start + i
        case let .batch(sequences): return sequences[i].position
        }
    }
}
