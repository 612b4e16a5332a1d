import Foundation

/// What every architecture shares around its forward pass, written once: the checks, decode of
/// one token in the workspace made at load, a batch of sequences in a workspace kept for the
/// largest batch yet, and prefill in chunks of `prefillChunk` tokens. A model supplies its
/// `forward` (up to a workspace's rows of tokens) and how to make a workspace; its public
/// `decode` and `prefill` are one line each, calling these.
protocol ChunkedForward: LanguageModel {
    associatedtype Config
    /// Tokens per prefill pass: the rows of the prefill workspace.
    static var prefillChunk: Int { get }
    static func workspace(rows: Int, config: Config) -> Workspace
    var config: Config { get }
    var vocab: Int { get }
    /// One row, made at load, so that decode allocates nothing.
    var decodeSpace: Workspace { get }
    /// `prefillChunk` rows, made by the first prefill.
    var prefillSpace: Workspace? { get set }
    var batchScratch: BatchScratch { get }
    /// T = tokens.count tokens (at most the workspace's rows): consecutive tokens of one sequence,
    /// or one token of each sequence of a batch (`rows`). With `allLogits` [T, V] every row's
    /// logits go there; the last row's always go to its sequence.
    func forward<C: Collection<Int>>(_ tokens: C, rows: Rows, in ws: Workspace, allLogits: UnsafeMutablePointer<Float>?)
}

extension ChunkedForward {
    /// The context must hold `count` more tokens (an unbounded state always does).
    @inline(__always)
    func checkRoom(for count: Int) throws {
        guard contextCapacity == Int.max || position + count <= contextCapacity else {
            throw ModelError.contextOverflow(requested: position + count, capacity: contextCapacity)
        }
    }

    func decodeOne(_ token: Int) throws {
        try checkRoom(for: 1)
        try InputSide.check(token, vocab: vocab)
        forward(CollectionOfOne(token), rows: .run(sequence, start: position, count: 1), in: decodeSpace, allLogits: nil)
    }

    func decodeBatch(_ tokens: [Int], sequences: [SequenceState]) throws {
        try InputSide.checkBatch(tokens, sequences, of: self, vocab: vocab, capacity: contextCapacity)
        let (space, batchLogits) = batchScratch.prepare(rows: tokens.count, vocab: vocab) { Self.workspace(rows: $0, config: config) }
        forward(tokens, rows: .batch(sequences), in: space, allLogits: batchLogits)
        InputSide.scatter(batchLogits, to: sequences, vocab: vocab)
    }

    func prefillInChunks(_ tokens: [Int], allLogits: UnsafeMutablePointer<Float>?) throws {
        try checkRoom(for: tokens.count)
        try InputSide.check(tokens, vocab: vocab)
        let space = prefillSpace ?? Self.workspace(rows: Self.prefillChunk, config: config)
        prefillSpace = space
        InputSide.inChunks(tokens, chunk: Self.prefillChunk, vocab: vocab, allLogits: allLogits) {
            forward($0, rows: .run(sequence, start: position, count: $0.count), in: space, allLogits: $1)
        }
    }
}
