import Foundation
import Orochi

extension Fuzz {
    /// Exercises a tokenizer that loaded: encoding (with and without specials) must give ids in
    /// the vocabulary, decoding any in-vocabulary ids and streaming them must not fail.
    public static func exercise(_ tokenizer: any Tokenizer) {
        let vocab = tokenizer.vocabSize
        precondition(vocab >= 0, "negative vocabulary size")
        if let bos = tokenizer.bosTokenId { precondition(bos >= 0 && bos < vocab, "BOS id \(bos) outside the vocabulary of \(vocab)") }
        if let eos = tokenizer.eosTokenId { precondition(eos >= 0 && eos < vocab, "EOS id \(eos) outside the vocabulary of \(vocab)") }
        for text in sampleTexts {
            for special in [false, true] {
                let ids = tokenizer.encode(text, addSpecialTokens: special)
                for id in ids { precondition(id >= 0 && id < vocab, "encode gave id \(id) outside the vocabulary of \(vocab)") }
                _ = tokenizer.decode(ids)
            }
        }
        guard vocab > 0 else { return }
        let some = Array(0..<min(vocab, 300)) + [vocab - 1]
        for id in some { _ = tokenizer.piece(for: id) }
        _ = tokenizer.piece(for: vocab)
        _ = tokenizer.piece(for: -1)
        _ = tokenizer.decode(some)
        let stream = StreamingDetokenizer(tokenizer)
        for id in some.prefix(64) { _ = stream.append(id) }
        _ = stream.finish()
    }
}
