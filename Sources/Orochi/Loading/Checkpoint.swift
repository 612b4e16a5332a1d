import Foundation

/// A Hugging Face model directory's weights: `model.safetensors`, or shards listed by
/// `model.safetensors.index.json` ({"weight_map": {tensor: file}}).
public final class Checkpoint {
    public let directory: URL
    private var fileForTensor: [String: SafetensorsFile] = [:]
    public private(set) var files: [SafetensorsFile] = []

    public init(directory: URL) throws {
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
                    file = try SafetensorsFile(path: path)
                    opened[fileName] = file
                    files.append(file)
                }
                guard file.entries[tensor] != nil else {
                    throw LoadError.missingTensor(name: tensor, directory: file.path)
                }
                fileForTensor[tensor] = file
            }
        } else if fm.fileExists(atPath: single.path) {
            let file = try SafetensorsFile(path: single.path)
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

    public func has(_ name: String) -> Bool { fileForTensor[name] != nil }

    /// Tensor count per checkpoint dtype, e.g. ["BF16": 57].
    public var dtypeCounts: [String: Int] {
        var counts: [String: Int] = [:]
        for (name, file) in fileForTensor { counts[file.entries[name]!.dtype.rawValue, default: 0] += 1 }
        return counts
    }

    /// The named weight as float32, checked against the shape the architecture expects.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        try tensor(name, shape: shape, convert: true)!
    }

    /// Checks the shape; converts to float32 only when `convert` (else returns nil after the check).
    private func tensor(_ name: String, shape: [Int], convert: Bool) throws -> Tensor? {
        guard let file = fileForTensor[name] else {
            throw LoadError.missingTensor(name: name, directory: directory.path)
        }
        let found = file.entries[name]!.shape
        // A vector may be stored as [n] or [1, n]; the element count and layout are what matter.
        guard found == shape || (found.filter { $0 != 1 } == shape.filter { $0 != 1 } && found.reduce(1, *) == shape.reduce(1, *)) else {
            throw LoadError.shapeMismatch(tensor: name, expected: shape, found: found)
        }
        return convert ? try file.tensor(name) : nil
    }

    /// A weight matrix [rows, columns], checked against that shape: in the checkpoint's own type
    /// (f16 and bf16 stay half precision, mapped from the file) or widened to float32 when asked.
    public func matrix(_ name: String, rows: Int, columns: Int, storage: WeightStorage) throws -> WeightMatrix {
        let t = try tensor(name, shape: [rows, columns], convert: storage == .f32)
        if let t { return WeightMatrix(t.data, rows: rows, columns: columns) }
        return try fileForTensor[name]!.matrix(name, rows: rows, columns: columns)
    }

    public func tensorIfPresent(_ name: String, shape: [Int]) throws -> Tensor? {
        has(name) ? try tensor(name, shape: shape) : nil
    }
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
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let DecodingError.keyNotFound(key, context) {
        let path = (context.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: ".")
        throw LoadError.badConfig(path: url.path, detail: "missing key '\(path)'")
    } catch let DecodingError.typeMismatch(type, context) {
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        throw LoadError.badConfig(path: url.path, detail: "key '\(path)' should be of type \(type)")
    } catch let DecodingError.valueNotFound(type, context) {
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        throw LoadError.badConfig(path: url.path, detail: "key '\(path)' is null, expected \(type)")
    } catch let error as LoadError {
        throw error
    } catch {
        throw LoadError.badConfig(path: url.path, detail: "not valid JSON")
    }
}
