import Foundation

/// A piece of text between pre-tokenizer cuts. `atStart`: it begins at offset 0 of the input
/// (Metaspace's prepend_scheme "first" looks at this).
struct PreSplit {
    var text: Scalars
    var atStart: Bool
}

/// How a Split keeps its matches (tokenizers' SplitDelimiterBehavior).
enum SplitBehavior: String {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"

    init(_ json: HFJSON) throws {
        let raw = try json.requiredString()
        // Python writes "removed", "merged_with_next"...; JSON files use the Rust names.
        let normalizedRaw = raw.split(separator: "_").map { $0.prefix(1).uppercased() + $0.dropFirst().lowercased() }.joined()
        guard let behavior = SplitBehavior(rawValue: raw) ?? SplitBehavior(rawValue: normalizedRaw) else {
            throw json.error("one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous")
        }
        self = behavior
    }

    /// Applies the behaviour to ranges marked as matches; returns the ranges to keep.
    func apply(_ pieces: [(Range<Int>, Bool)]) -> [Range<Int>] {
        switch self {
        case .removed: return pieces.filter { !$0.1 }.map(\.0)
        case .isolated: return pieces.map(\.0)
        case .mergedWithPrevious:
            var result: [Range<Int>] = []
            var previousMatch = false
            for (range, isMatch) in pieces {
                if isMatch && !previousMatch, let last = result.last {
                    result[result.count - 1] = last.lowerBound..<range.upperBound
                } else {
                    result.append(range)
                }
                previousMatch = isMatch
            }
            return result
        case .mergedWithNext:
            var result: [Range<Int>] = []
            var previousMatch = false
            for (range, isMatch) in pieces.reversed() {
                if isMatch && !previousMatch, let last = result.last {
                    result[result.count - 1] = range.lowerBound..<last.upperBound
                } else {
                    result.append(range)
                }
                previousMatch = isMatch
            }
            return result.reversed()
        case .contiguous:
            var result: [Range<Int>] = []
            var previousMatch = false
            for (range, isMatch) in pieces {
                if isMatch == previousMatch, let last = result.last {
                    result[result.count - 1] = last.lowerBound..<range.upperBound
                } else {
                    result.append(range)
                }
                previousMatch = isMatch
            }
            return result
        }
    }
}

/// Each character satisfying `predicate` is a match of its own (tokenizers' char patterns).
func characterMatches(_ text: Scalars, _ predicate: (Unicode.Scalar) -> Bool) -> [(Range<Int>, Bool)] {
    var result: [(Range<Int>, Bool)] = []
    var last = 0
    for (index, scalar) in text.enumerated() where predicate(scalar) {
        if last < index { result.append((last..<index, false)) }
        result.append((index..<(index + 1), true))
        last = index + 1
    }
    if last < text.count { result.append((last..<text.count, false)) }
    return result
}

/// tokenizer.json "pre_tokenizer".
indirect enum HFPreTokenizer {
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case metaspace(replacement: Unicode.Scalar, prependScheme: String, split: Bool)
    case split(HFPattern, SplitBehavior, invert: Bool)
    case digits(individual: Bool)
    case punctuation(SplitBehavior)
    case whitespace
    case whitespaceSplit
    case sequence([HFPreTokenizer])

    init(_ json: HFJSON) throws {
        switch try json.type() {
        case "ByteLevel":
            self = .byteLevel(addPrefixSpace: try json["add_prefix_space"].bool(default: true),
                              useRegex: try json["use_regex"].bool(default: true))
        case "Metaspace":
            let replacement = try json["replacement"].string(default: "▁")
            guard replacement.unicodeScalars.count == 1 else { throw json["replacement"].error("a single character") }
            var scheme = try json["prepend_scheme"].string(default: "always")
            if json["prepend_scheme"].isNull, let addPrefix = json["add_prefix_space"].bool { scheme = addPrefix ? "always" : "never" }
            guard ["first", "always", "never"].contains(scheme) else { throw json["prepend_scheme"].error("first, always or never") }
            self = .metaspace(replacement: replacement.unicodeScalars.first!, prependScheme: scheme,
                              split: try json["split"].bool(default: true))
        case "Split":
            self = .split(try HFPattern(json["pattern"]), try SplitBehavior(json["behavior"]), invert: try json["invert"].bool(default: false))
        case "Digits": self = .digits(individual: try json["individual_digits"].bool(default: false))
        case "Punctuation":
            self = .punctuation(json["behavior"].isNull ? .isolated : try SplitBehavior(json["behavior"]))
        case "Whitespace": self = .whitespace
        case "WhitespaceSplit": self = .whitespaceSplit
        case "Sequence": self = .sequence(try json["pretokenizers"].requiredArray().map(HFPreTokenizer.init))
        case let other: throw TokenizerError.unsupported(path: json.file, component: "pre-tokenizer \"\(other)\" (at \(json.path))")
        }
    }

    private static let wordRegex = try! NSRegularExpression(pattern: #"\w+|[^\w\s]+"#)

    func apply(_ splits: [PreSplit]) -> [PreSplit] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(splits) { $1.apply($0) }
        default:
            var output: [PreSplit] = []
            output.reserveCapacity(splits.count)
            for split in splits { apply(split, into: &output) }
            return output
        }
    }

    private func cut(_ split: PreSplit, _ ranges: [Range<Int>], into output: inout [PreSplit]) {
        for range in ranges where !range.isEmpty {
            output.append(PreSplit(text: Array(split.text[range]), atStart: split.atStart && range.lowerBound == 0))
        }
    }

    private func apply(_ split: PreSplit, into output: inout [PreSplit]) {
        switch self {
        case .byteLevel(let addPrefixSpace, let useRegex):
            var text = split.text
            if addPrefixSpace && text.first != " " { text.insert(" ", at: 0) }
            let ranges = useRegex ? GPT2Regex.split(text) : [0..<text.count]
            for range in ranges where !range.isEmpty {
                var mapped = Scalars()
                for scalar in text[range] {
                    UTF8.encode(scalar) { mapped.append(ByteLevelAlphabet.scalar(for: $0)) }
                }
                output.append(PreSplit(text: mapped, atStart: split.atStart && range.lowerBound == 0))
            }
        case .metaspace(let replacement, let scheme, let shouldSplit):
            var text = split.text.map { $0 == " " ? replacement : $0 }
            if text.first != replacement && (scheme == "always" || (scheme == "first" && split.atStart)) {
                text.insert(replacement, at: 0)
            }
            let replaced = PreSplit(text: text, atStart: split.atStart)
            if shouldSplit {
                cut(replaced, SplitBehavior.mergedWithNext.apply(characterMatches(text) { $0 == replacement }), into: &output)
            } else if !text.isEmpty {
                output.append(replaced)
            }
        case .split(let pattern, let behavior, let invert):
            var pieces = pattern.splits(split.text)
            if invert { pieces = pieces.map { ($0.0, !$0.1) } }
            cut(split, behavior.apply(pieces), into: &output)
        case .digits(let individual):
            let matches = characterMatches(split.text, isNumeric)
            cut(split, (individual ? SplitBehavior.isolated : .contiguous).apply(matches), into: &output)
        case .punctuation(let behavior):
            cut(split, behavior.apply(characterMatches(split.text, isPunctuation)), into: &output)
        case .whitespace:
            let pieces = HFPattern.regex(Self.wordRegex).splits(split.text).map { ($0.0, !$0.1) }
            cut(split, SplitBehavior.removed.apply(pieces), into: &output)
        case .whitespaceSplit:
            cut(split, SplitBehavior.removed.apply(characterMatches(split.text) { $0.properties.isWhitespace }), into: &output)
        case .sequence:
            output.append(contentsOf: apply([split]))
        }
    }
}

/// ASCII punctuation or a Unicode punctuation category (P*), as tokenizers' Punctuation.
func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.isASCII {
        let v = scalar.value
        return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v)
    }
    switch scalar.properties.generalCategory {
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
         .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
    default: return false
    }
}

/// Rust's char::is_numeric: categories Nd, Nl, No (not CJK numerals such as 一).
func isNumeric(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.isASCII { return (48...57).contains(scalar.value) }
    switch scalar.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: return true
    default: return false
    }
}
