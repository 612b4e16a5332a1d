import Foundation

/// Chooses the next token from logits. Temperature 0 is greedy (argmax); otherwise the logits are
/// divided by the temperature, cut to the `topK` most likely and then to the smallest set whose
/// probability reaches `topP`, and sampled with a seeded generator, so a seed reproduces a run.
/// Scratch buffers are allocated once: sampling allocates nothing per token.
public final class Sampler {
    public struct Settings: Sendable, Equatable {
        public var temperature: Float = 0.8
        public var topK: Int = 40            // 0: off
        public var topP: Float = 0.95        // 1: off
        public var repetitionPenalty: Float = 1.0   // 1: off; > 1 discourages recent tokens (as in transformers)
        public var repetitionWindow: Int = 64
        public var seed: UInt64 = 0
        public init(temperature: Float = 0.8, topK: Int = 40, topP: Float = 0.95,
                    repetitionPenalty: Float = 1.0, repetitionWindow: Int = 64, seed: UInt64 = 0) {
            self.temperature = temperature; self.topK = topK; self.topP = topP
            self.repetitionPenalty = repetitionPenalty; self.repetitionWindow = repetitionWindow; self.seed = seed
        }

        /// The ranges the settings must lie in, each error naming the command-line option.
        public func validate() throws {
            func fail(_ message: String) -> SamplerError { SamplerError.invalidSetting(message) }
            guard temperature.isFinite, temperature >= 0 else { throw fail("--temperature must be a finite number ≥ 0, got \(temperature)") }
            guard topP > 0, topP <= 1 else { throw fail("--top-p must be in (0, 1], got \(topP)") }
            guard topK >= 0 else { throw fail("--top-k must be ≥ 0 (0: off), got \(topK)") }
            guard repetitionPenalty.isFinite, repetitionPenalty > 0 else {
                throw fail("--repeat-penalty must be a finite number > 0 (1: off), got \(repetitionPenalty)")
            }
            guard repetitionWindow >= 0 else { throw fail("the repetition window must be ≥ 0, got \(repetitionWindow)") }
        }
    }

    public let settings: Settings
    private var rng: SplitMix64
    private let vocab: Int
    private let probs: FloatBuffer                       // [V] working copy of the logits, then probabilities
    private var candidates: UnsafeMutablePointer<Int>    // [V] indices kept by top-k / top-p
    private var seen: Set<Int> = []

    public init(settings: Settings, vocabSize: Int) {
        self.settings = settings
        vocab = vocabSize
        rng = SplitMix64(seed: settings.seed)
        probs = FloatBuffer(count: vocabSize)
        candidates = .allocate(capacity: vocabSize)
        seen.reserveCapacity(2 * min(max(settings.repetitionWindow, 0), 4096))
    }

    deinit { candidates.deallocate() }

    /// Picks a token. `history` is the context so far, for the repetition penalty.
    public func sample(_ logits: UnsafeBufferPointer<Float>, history: [Int] = []) -> Int {
        let p = probs.pointer
        memcpy(p, logits.baseAddress!, vocab * 4)
        if settings.repetitionPenalty != 1, !history.isEmpty {
            // Each distinct recent token once: positive logits divided, negative multiplied.
            seen.removeAll(keepingCapacity: true)
            // Clamped to the finite range: a tiny penalty (1e-40) would make a positive logit +∞.
            let limit = Float.greatestFiniteMagnitude
            for t in history.suffix(settings.repetitionWindow) where t >= 0 && t < vocab && seen.insert(t).inserted {
                p[t] = min(max(p[t] > 0 ? p[t] / settings.repetitionPenalty : p[t] * settings.repetitionPenalty, -limit), limit)
            }
        }
        let invT = 1 / settings.temperature
        // Greedy at temperature 0, and when 1/T is not finite (a denormal temperature).
        if settings.temperature <= 0 || !invT.isFinite { return Kernels.argmax(p, count: vocab) }

        // The maximum subtracted before scaling: every scaled logit is then ≤ 0, so a tiny
        // temperature (1e-38) drives the others towards −∞ (probability 0) instead of overflowing
        // to +∞ and a NaN distribution; T → 0 tends to greedy, as it should.
        let top = p[Kernels.argmax(p, count: vocab)]
        for i in 0..<vocab { p[i] = (p[i] - top) * invT }
        Kernels.softmax(p, count: vocab)

        // Candidates: the top k by probability (a bounded selection), else every token.
        var n: Int
        let k = settings.topK > 0 ? min(settings.topK, vocab) : vocab
        if k < vocab {
            n = selectTopK(k)
        } else if settings.topP < 1 {
            // Tokens below (1 − p)/(V − 1) can never be inside the nucleus (llama2.c's cut).
            let cutoff = (1 - settings.topP) / Float(vocab - 1)
            n = 0
            for i in 0..<vocab where p[i] >= cutoff { candidates[n] = i; n += 1 }
            // The most probable token is always kept (as transformers' top-p keeps at least one):
            // with a near-uniform distribution no token may reach the cut-off.
            if n == 0 { candidates[0] = Kernels.argmax(p, count: vocab); n = 1 }
        } else {
            return sampleAll()
        }
        // Sort the candidates by probability, descending; keep the smallest prefix reaching top-p.
        var buffer = UnsafeMutableBufferPointer(start: candidates, count: n)
        buffer.sort { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }
        var total: Float = 0
        var kept = n
        for i in 0..<n {
            total += p[candidates[i]]
            if settings.topP < 1 && total >= settings.topP { kept = i + 1; break }
        }
        if kept < n { total = 0; for i in 0..<kept { total += p[candidates[i]] } }
        let r = rng.nextUnitFloat() * total
        var acc: Float = 0
        for i in 0..<kept {
            acc += p[candidates[i]]
            if r < acc { return candidates[i] }
        }
        return candidates[kept - 1]
    }

    /// Inverse-CDF sample over the whole distribution in `probs`.
    private func sampleAll() -> Int {
        let p = probs.pointer
        let r = rng.nextUnitFloat()
        var acc: Float = 0
        for i in 0..<vocab {
            acc += p[i]
            if r < acc { return i }
        }
        return vocab - 1
    }

    /// Writes the indices of the k largest probabilities into `candidates` using a min-heap
    /// of size k: O(V log k), no allocation.
    private func selectTopK(_ k: Int) -> Int {
        let p = probs.pointer
        let heap = candidates
        func less(_ a: Int, _ b: Int) -> Bool { p[a] < p[b] || (p[a] == p[b] && a > b) }
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < k && less(heap[l], heap[m]) { m = l }
                if r < k && less(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m); i = m
            }
        }
        for i in 0..<k { heap[i] = i }
        for i in stride(from: k / 2 - 1, through: 0, by: -1) { siftDown(i) }
        for i in k..<vocab where less(heap[0], i) {
            heap[0] = i
            siftDown(0)
        }
        return k
    }
}

private extension UnsafeMutablePointer where Pointee == Int {
    func swapAt(_ i: Int, _ j: Int) { let t = self[i]; self[i] = self[j]; self[j] = t }
}

public enum SamplerError: Error, CustomStringConvertible, Equatable {
    case invalidSetting(String)
    public var description: String {
        switch self { case .invalidSetting(let s): return s }
    }
}
