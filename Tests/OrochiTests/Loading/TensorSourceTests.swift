import Foundation
import Testing
@testable import Orochi

/// Tensors held in memory under names of their own: a second TensorSource beside safetensors,
/// to show that the loader's checks and name mapping do not depend on the file format.
final class MemoryTensors: TensorSource {
    var values: [String: (shape: [Int], data: [Float])]
    private var kept: [UnsafeMutablePointer<Float>] = []
    init(_ values: [String: (shape: [Int], data: [Float])]) { self.values = values }
    deinit { for p in kept { p.deallocate() } }

    var tensorNames: [String] { values.keys.sorted() }
    func shape(of name: String) -> [Int]? { values[name]?.shape }
    func format(of name: String) -> String? { values[name] == nil ? nil : "F32" }
    func holdsReals(_ name: String) -> Bool { values[name] != nil }
    func floats(_ name: String) throws -> Tensor {
        guard let v = values[name] else { throw LoadError.missingTensor(name: name, directory: location) }
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, v.data.count))
        p.initialize(from: v.data, count: v.data.count)
        kept.append(p)
        return Tensor(name: name, shape: v.shape, data: p)
    }
    func storedMatrix(_ name: String, rows: Int, columns: Int) throws -> WeightMatrix? { nil }
    var placement: String { "in memory" }
    var location: String { "<memory>" }
}

struct TensorSourceTests {
    /// A whole model from a source whose names are not Hugging Face's (as GGUF's are not): the
    /// same logits as the safetensors checkpoint it was copied from.
    @Test func aModelFromAnotherSourceUnderOtherNames() throws {
        let dir = Fixtures.directory("llama", "mha_tied_f32")
        let checkpoint = try Checkpoint(directory: dir)
        var values: [String: (shape: [Int], data: [Float])] = [:]
        for name in checkpoint.tensorNames {
            let t = try checkpoint.floats(name)
            values["renamed/" + name] = (t.shape, Array(UnsafeBufferPointer(start: t.data, count: t.count)))
        }
        let config = try readJSONConfig(LlamaConfig.self, from: dir.appendingPathComponent("config.json"))
        let renamed = try BlockModel(config: config, source: SourceWeights(MemoryTensors(values), storage: .asStored, fileName: { "renamed/" + $0 }),
                                     configPath: "test", context: nil, kvCache: .f32)
        let original = try ModelRegistry.load(directory: dir)
        let ids = try Fixtures.reference(dir).ids
        try renamed.prefill(ids); try original.prefill(ids)
        #expect(Array(renamed.lastLogits) == Array(original.lastLogits))
        #expect(renamed.info.parameterCount == original.info.parameterCount)
    }

    /// Shapes, missing tensors and non-finite values are checked by the loader for any source,
    /// naming the file's tensor; the finite scan counts what the source holds.
    @Test func checksRunOnAnySource() throws {
        let source = MemoryTensors(["a": ([2, 3], [1, 2, 3, 4, 5, 6]), "v": ([1, 4], [1, .nan, 3, .infinity]), "w": ([4], [1, 2, 3, 4])])
        let weights = SourceWeights(source, storage: .asStored, fileName: { $0 })
        #expect(throws: LoadError.shapeMismatch(tensor: "a", expected: [3, 2], found: [2, 3])) {
            try weights.matrix("a", rows: 3, columns: 2, initial: .constant(0))
        }
        #expect(throws: LoadError.missingTensor(name: "b", directory: "<memory>")) { try weights.vector("b", shape: [4], initial: .constant(0)) }
        #expect(throws: LoadError.nonFinite(tensor: "v", count: 2)) { try weights.vector("v", shape: [4], initial: .constant(0)) }
        #expect(try weights.vector("w", shape: [1, 4], initial: .constant(0))[3] == 4, "[4] read as [1, 4]")
        #expect(try source.nonFiniteCounts().map(\.tensor) == ["v"])
        #expect(weights.has("w", configured: false) && !weights.has("x", configured: false))
    }
}
