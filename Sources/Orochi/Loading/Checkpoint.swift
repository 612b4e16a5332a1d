import Foundation

/// A Hugging Face model directory's weights: `model.safetensors`, or shards listed by
/// `model.safetensors.index.json` ({"weight_map": {tensor: file}}).
public final class Checkpoint {
    public let directory: URL
    private var fileForTensor: [String: SafetensorsFile] = [:]
    public private(set) var files: [SafetensorsFile] = []

    /// `memory`: how each file's bytes are held (`WeightMemory`).
    public init(directory: URL, memory: WeightMemory = .hugePages) throws {
        self.directory = directory
        let fm = FileManager.default
        let single = directory.appendingPathComponent("model.safetensors")
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        if fm.fileExists(atPath: index.path) {
            let weightMap = try Self.readWeightMap(index)
            var opened: [String: SafetensorsFile] = [:]
            for (tensor, fileName) in weightMap.sorted(by: { $0.key < $1.key }) {
                guard !fileName.contains("/"), !fileName.hasPrefix(".") else {
                    throw LoadError.badConfig(path: index.path, detail: "weight_map names file '\(fileName)' outside the model directory")
                }
                let file: SafetensorsFile
                if let f = opened[fileName] { file = f } else {
                    let path = directory.appendingPathComponent(fileName).path
                    guard fm.fileExists(atPath: path) else {
                        throw LoadError.missingFile(path: path, detail: "shard listed in model.safetensors.index.json does not exist")
                    }
                    file = try SafetensorsFile(path: path, memory: memory)
                    opened[fileName] = file
                    files.append(file)
                }
                guard file.entries[tensor] != nil else {
                    throw LoadError.missingTensor(name: tensor, directory: file.path)
                }
                fileForTensor[tensor] = file
            }
        } else if fm.fileExists(atPath: single.path) {
            let file = try SafetensorsFile(path: single.path, memory: memory)
            files = [file]
            for name in file.entries.keys { fileForTensor[name] = file }
        } else {
            throw LoadError.missingFile(path: directory.path, detail: "no model.safetensors or model.safetensors.index.json in the model directory")
        }
    }

    private static func readWeightMap(_ url: URL) throws -> [String: String] {
        struct Index: Decodable { let weight_map: [String: String] }
        do {
            return try JSONDecoder().decode(Index.self, from: Data(contentsOf: url)).weight_map
        } catch {
            throw LoadError.badConfig(path: url.path, detail: "expected a JSON object with a 'weight_map' of tensor → file names")
        }
    }

    public var tensorNames: [String] { fileForTensor.keys.sorted() }

    /// Where the files' bytes live, for `inspect`: read into huge pages (with how much of them the
    /// kernel really put on 2 MiB pages) or mapped.
    public var placement: String {
        let read = files.filter { $0.memory == .hugePages }
        if read.isEmpty {
            let reasons = Set(files.compactMap(\.mappedBecause)).sorted().joined(separator: ", ")
            return "mapped from the file (4 KiB pages)" + (reasons.isEmpty ? "" : ": \(reasons)")
        }
        let total = read.reduce(0) { $0 + $1.byteCount }, counted = read.compactMap(\.hugePageBytes)
        guard counted.count == read.count else { return "read into private memory of \(formatBytes(total)), advised for 2 MiB pages" }
        let huge = counted.reduce(0, +)
        return "read into private memory, \(formatBytes(min(huge, total))) of \(formatBytes(total)) on 2 MiB pages"
    }

    public func has(_ name: String) -> Bool { fileForTensor[name] != nil }

    /// Tensor count per checkpoint dtype, e.g. ["BF16": 57].
    public var dtypeCounts: [String: Int] { formatCounts }

    /// The named weight as float32, checked against the shape the architecture expects.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        try checkedShape(name, expected: shape)
        return try floats(name)
    }

    public func tensorIfPresent(_ name: String, shape: [Int]) throws -> Tensor? {
        has(name) ? try tensor(name, shape: shape) : nil
    }
}

extension Checkpoint: TensorSource {
    public func shape(of name: String) -> [Int]? { fileForTensor[name]?.entries[name]?.shape }
    public func format(of name: String) -> String? { fileForTensor[name]?.entries[name]?.dtype.rawValue }
    public func holdsReals(_ name: String) -> Bool {
        guard let dtype = fileForTensor[name]?.entries[name]?.dtype else { return false }
        return [.f32, .f16, .bf16].contains(dtype)
    }
    public func floats(_ name: String) throws -> Tensor {
        guard let file = fileForTensor[name] else { throw LoadError.missingTensor(name: name, directory: directory.path) }
        return try file.tensor(name)
    }
    /// F16 and BF16 stay half precision, views into the file; F32 is already what the kernels read.
    public func storedMatrix(_ name: String, rows: Int, columns: Int) throws -> WeightMatrix? {
        guard let file = fileForTensor[name] else { throw LoadError.missingTensor(name: name, directory: directory.path) }
        return try file.matrix(name, rows: rows, columns: columns)
    }
    public var location: String { directory.path }
}

/// How weight matrices are kept in memory: as the checkpoint stores them (the default; f16 and
/// bf16 stay half precision, so decode reads half the bytes) or widened to float32 at load.
public enum WeightStorage: String, Sendable, CaseIterable {
    case asStored = "stored", f32
}

/// Token ids that config files give either as one integer or as a list.
public struct TokenIDList: Decodable, Sendable, Equatable {
    public var ids: [Int]
    public init(_ ids: [Int]) { self.ids = ids }
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { ids = [] }
        else if let one = try? c.decode(Int.self) { ids = [one] }
        else { ids = try c.decode([Int].self) }
    }
}

/// The keys of config.json that every architecture shares, read before choosing one.
public struct ConfigHeader: Decodable, Sendable {
    public var model_type: String?
    public var architectures: [String]?
    public var bos_token_id: TokenIDList?
    public var eos_token_id: TokenIDList?
}

/// generation_config.json: the token ids that end generation.
public struct GenerationConfig: Decodable, Sendable {
    public var bos_token_id: TokenIDList?
    public var eos_token_id: TokenIDList?
}

/// Reads a JSON config into `T`, turning decoding errors into messages that name the key.
public func readJSONConfig<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw LoadError.missingFile(path: url.path, detail: "cannot read file")
    }
    // Syntax first, strictly (Foundation's parser accepts trailing commas, and keeps the first of
    // two equal keys where Python's json, which transformers reads configs with, keeps the last):
    // the strict parse is what the decoder then reads.
    let strict: Data
    do {
        let value = try StrictJSON.parse(Array(data), pythonFloats: true)
        guard value is [String: Any] else { throw LoadError.badConfig(path: url.path, detail: "expected a JSON object") }
        strict = try JSONSerialization.data(withJSONObject: value)
    } catch let e as StrictJSON.SyntaxError {
        throw LoadError.badConfig(path: url.path, detail: "not valid JSON at line \(e.line), column \(e.column): \(e.detail)")
    } catch let error as LoadError {
        throw error
    } catch {
        throw LoadError.badConfig(path: url.path, detail: "not valid JSON")
    }
    do {
        return try JSONDecoder().decode(T.self, from: strict)
    } catch let DecodingError.keyNotFound(key, context) {
        let path = (context.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: ".")
        throw LoadError.badConfig(path: url.path, detail: "missing key '\(path)'")
    } catch let DecodingError.typeMismatch(type, context) {
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        throw LoadError.badConfig(path: url.path, detail: "key '\(path)' should be \(expectedKind(type))")
    } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
        // A value of the right JSON kind that does not fit, e.g. 256.5 or 2^70 for an integer.
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        let text = context.debugDescription
        let found = text.firstIndex(of: "<").flatMap { open in
            text[open...].firstIndex(of: ">").map { " (found \(text[text.index(after: open)..<$0]))" }
        } ?? ""
        let expected = context.debugDescription.contains("does not fit in Int") ? "an integer in the 64-bit range" : "a valid value"
        throw LoadError.badConfig(path: url.path, detail: "key '\(path)' should be \(expected)\(found)")
    } catch let DecodingError.valueNotFound(type, context) {
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        throw LoadError.badConfig(path: url.path, detail: "key '\(path)' is null, expected \(type)")
    } catch let error as LoadError {
        throw error
    } catch let DecodingError.dataCorrupted(context) {
        // Foundation reports a number that does not fit the key's type (256.5 or 1e30 for an
        // integer) as invalid JSON without a path: find the key by trying each suspect value.
        if let (key, value) = nonIntegerKey(T.self, data) {
            throw LoadError.badConfig(path: url.path, detail: "key '\(key)' should be an integer in the 64-bit range, found \(value)")
        }
        let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
        throw LoadError.badConfig(path: url.path, detail: "not valid JSON" + (underlying.map { " (\($0))" } ?? ""))
    } catch {
        throw LoadError.badConfig(path: url.path, detail: "not valid JSON")
    }
}

/// "an integer" for Int, "a string" for String …, for messages about config keys.
func expectedKind(_ type: Any.Type) -> String {
    switch type {
    case is Int.Type, is UInt64.Type, is Int32.Type: return "an integer"
    case is Double.Type, is Float.Type: return "a number"
    case is String.Type: return "a string"
    case is Bool.Type: return "true or false"
    default:
        let name = "\(type)"
        if name.hasPrefix("Array") { return "a list" }
        if name.hasPrefix("Dictionary") { return "an object" }
        return "of type \(name)"
    }
}

/// The key whose number (fractional, or beyond the 64-bit integer range) makes decoding `T`
/// fail: the first such value that, set to 0, changes the outcome. Nil when there is none or the
/// data is not a JSON object.
func nonIntegerKey<T: Decodable>(_ type: T.Type, _ data: Data) -> (key: String, value: String)? {
    guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
    var suspects: [([String], String)] = []
    func walk(_ value: Any, _ path: [String]) {
        if let object = value as? [String: Any] {
            for (k, v) in object.sorted(by: { $0.key < $1.key }) { walk(v, path + [k]) }
        } else if let number = value as? NSNumber, !(value is Bool && (number == 0 || number == 1)) {
            let d = number.doubleValue
            if d != d.rounded() || abs(d) >= 9.2e18 { suspects.append((path, "\(number)")) }
        }
    }
    walk(root, [])
    func replacing(_ object: [String: Any], _ path: ArraySlice<String>) -> [String: Any] {
        var copy = object
        guard let first = path.first else { return copy }
        if path.count == 1 { copy[first] = 0 } else if let inner = copy[first] as? [String: Any] {
            copy[first] = replacing(inner, path.dropFirst())
        }
        return copy
    }
    for (path, text) in suspects {
        guard let patched = try? JSONSerialization.data(withJSONObject: replacing(root, path[...])) else { continue }
        do { _ = try JSONDecoder().decode(T.self, from: patched) } catch DecodingError.dataCorrupted(let c) where c.codingPath.isEmpty {
            continue
        } catch {}
        return (path.joined(separator: "."), text)
    }
    return nil
}
