/// Finds stop strings in generated text as it streams: returns only text that cannot be the start
/// of a stop string, holding back a tail that might be; once a stop string appears, the text
/// before it is the last returned. Matching is exact, on Unicode scalars.
struct StopMatcher {
    private let stops: [[Unicode.Scalar]]
    private var pending: [Unicode.Scalar] = []
    private(set) var stopped = false

    init(_ stops: [String]) {
        self.stops = stops.map { Array($0.unicodeScalars) }.filter { !$0.isEmpty }
    }

    /// Adds generated text; returns the text now safe to send. After a match, `stopped` is true
    /// and the text before the stop string has been returned.
    mutating func push(_ text: String) -> String {
        guard !stopped else { return "" }
        pending.append(contentsOf: text.unicodeScalars)
        if stops.isEmpty { return flush() }
        // The earliest match of any stop string.
        var best: Int? = nil
        for stop in stops where stop.count <= pending.count {
            var i = 0
            while i + stop.count <= pending.count, best.map({ i < $0 }) ?? true {
                if pending[i] == stop[0], pending[i..<i + stop.count].elementsEqual(stop) { best = i; break }
                i += 1
            }
        }
        if let best {
            stopped = true
            let out = String(String.UnicodeScalarView(pending[..<best]))
            pending = []
            return out
        }
        // Hold back the longest tail that begins some stop string.
        var hold = 0
        for stop in stops {
            var k = min(stop.count - 1, pending.count)
            while k > hold {
                if pending[(pending.count - k)...].elementsEqual(stop[..<k]) { hold = k; break }
                k -= 1
            }
        }
        let out = String(String.UnicodeScalarView(pending[..<(pending.count - hold)]))
        pending.removeFirst(pending.count - hold)
        return out
    }

    /// The text held back, at the end of the generation (no stop string followed).
    mutating func flush() -> String {
        let out = String(String.UnicodeScalarView(pending))
        pending = []
        return out
    }
}
