import Foundation
import OrochiKernels

/// A GGUF file's tensors (by their GGUF names; `SourceWeights.fileName` maps an architecture's
/// Hugging Face names onto them). Quantized matrices stay in their blocks, views into the mapped
/// file; vectors and widened matrices are dequantized once.
///
/// llama.cpp's converter stores a `llama` model's query and key rows reordered for its
/// interleaved rotary embedding (convert_hf_to_gguf.py's `permute`): those matrices are put back
/// in Hugging Face's order here, a row copy that works on blocks as on floats.
final class GGUFTensors: TensorSource {
    let file: GGUFFile
    private let byName: [String: GGUFTensorInfo]
    /// Matrices whose rows come in heads of interleaved halves, and their head count.
    private let interleavedHeads: [String: Int]
    /// Tensors computed from another value by value, by the name they are asked for (Mamba's
    /// A_log = log(−A): llama.cpp stores A itself).
    private let computed: [String: (source: String, transform: (Float) -> Float)]
    /// Matrices that are one slice of a 3-dimensional tensor, by the name they are asked for:
    /// expert `index` of llama.cpp's stacked experts ([X, F, D] holds each expert's [F, D]).
    private let slices: [String: (source: String, index: Int)]
    /// Tensors made by putting others' rows side by side, by the name they are asked for: Granite's
    /// fused gate and up (`input_linear`) from llama.cpp's separate `ffn_gate*` and `ffn_up*`, per
    /// expert (each source's `parts` slices interleaved: gate₀ up₀ gate₁ up₁ …). A copy, made once.
    private let fused: [String: (sources: [String], parts: Int)]
    private var converted: [String: FloatBuffer] = [:]
    private var reordered: [String: UnsafeMutableRawPointer] = [:]
    private let lock = NSLock()

    /// `flattened`: tensors read as one vector of all their values (Mamba-2's gated-norm weight,
    /// which llama.cpp stores as [G, E/G] and Hugging Face as [E], the same values in the same order).
    init(file: GGUFFile, interleavedHeads: [String: Int] = [:],
         computed: [String: (source: String, transform: (Float) -> Float)] = [:],
         slices: [String: (source: String, index: Int)] = [:], flattened: Set<String> = [],
         fused: [String: (sources: [String], parts: Int)] = [:]) {
        self.file = file
        var byName = file.tensorByName
        // A fused tensor is described by its sources' type and its own dimensions (rows doubled).
        for (name, (sources, parts)) in fused {
            let found = sources.compactMap { byName[$0] }
            guard found.count == sources.count, let first = found.first, first.dimensions.count >= 2, parts > 0,
                  found.allSatisfy({ $0.dimensions == first.dimensions && $0.type == first.type }),
                  first.dimensions.count == 2 ? parts == 1 : first.dimensions.count == 3 && first.dimensions[2] == parts else { continue }
            var dimensions = first.dimensions
            dimensions[1] *= sources.count
            byName[name] = GGUFTensorInfo(name: name, dimensions: dimensions, type: first.type, offset: 0, byteCount: first.byteCount * sources.count)
        }
        self.fused = fused
        for name in flattened {
            guard let t = byName[name] else { continue }
            byName[name] = GGUFTensorInfo(name: name, dimensions: [t.valueCount], type: t.type, offset: t.offset, byteCount: t.byteCount)
        }
        // A slice is described as a tensor of its own, inside the stacked one's bytes.
        for (name, (source, index)) in slices {
            guard let t = byName[source], t.dimensions.count == 3, index >= 0, index < t.dimensions[2] else { continue }
            let bytes = t.byteCount / t.dimensions[2]
            byName[name] = GGUFTensorInfo(name: name, dimensions: Array(t.dimensions.prefix(2)), type: t.type,
                                          offset: t.offset + index * bytes, byteCount: bytes)
        }
        self.byName = byName
        self.interleavedHeads = interleavedHeads
        self.computed = computed
        self.slices = slices
    }

    deinit { for p in reordered.values { free(p) } }

    var tensorNames: [String] { byName.keys.filter { slices[$0] == nil && fused[$0] == nil }.sorted() }
    func shape(of name: String) -> [Int]? { byName[computed[name]?.source ?? name]?.shape }
    func format(of name: String) -> String? { byName[computed[name]?.source ?? name]?.type.name }
    func holdsReals(_ name: String) -> Bool { byName[computed[name]?.source ?? name]?.type.weightType != nil }
    var placement: String { "mapped from the file (4 KiB pages)" }
    var location: String { file.path }

    private func info(_ name: String) throws -> (GGUFTensorInfo, WeightType) {
        guard let t = byName[name] else { throw LoadError.missingTensor(name: name, directory: file.path) }
        guard let type = t.type.weightType else {
            throw LoadError.badGGUF(path: file.path, detail: "tensor '\(t.name)' is \(t.type.name), a type Orochi does not compute with (it reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K–Q6_K)")
        }
        return (t, type)
    }

    /// The tensor's bytes in Hugging Face's row order: in place, or a reordered copy kept here.
    private func bytes(_ name: String, _ t: GGUFTensorInfo, _ type: WeightType) throws -> UnsafeRawPointer {
        if let (sources, parts) = fused[name] { return try fusedBytes(name, sources: sources, parts: parts, byteCount: t.byteCount) }
        let raw = file.data(of: t)
        guard let heads = interleavedHeads[name] else { return raw }
        lock.lock(); defer { lock.unlock() }
        if let done = reordered[name] { return UnsafeRawPointer(done) }
        let columns = t.dimensions[0], rows = t.valueCount / max(columns, 1)
        guard heads > 0, rows % (2 * heads) == 0 else {
            throw LoadError.badGGUF(path: file.path, detail: "tensor '\(t.name)': \(rows) rows are not \(heads) heads of an even size")
        }
        let rowBytes = type.rowBytes(columns), headRows = rows / heads, half = headRows / 2
        guard let copy = malloc(max(t.byteCount, 1)) else { throw FloatBuffer.AllocationError.outOfMemory(bytes: t.byteCount) }
        // Hugging Face's row (head h, half s, i) is the file's row (h, i, s).
        for h in 0..<heads {
            for s in 0..<2 {
                for i in 0..<half {
                    let to = h * headRows + s * half + i, from = h * headRows + 2 * i + s
                    memcpy(copy + to * rowBytes, raw + from * rowBytes, rowBytes)
                }
            }
        }
        reordered[name] = copy
        return UnsafeRawPointer(copy)
    }

    /// The sources' slices interleaved into one copy (kept until the tensors go).
    private func fusedBytes(_ name: String, sources: [String], parts: Int, byteCount: Int) throws -> UnsafeRawPointer {
        lock.lock(); defer { lock.unlock() }
        if let done = reordered[name] { return UnsafeRawPointer(done) }
        guard let copy = malloc(max(byteCount, 1)) else { throw FloatBuffer.AllocationError.outOfMemory(bytes: byteCount) }
        let infos = sources.map { byName[$0]! }, slice = infos[0].byteCount / parts
        var at = 0
        for part in 0..<parts {
            for info in infos {
                memcpy(copy + at, file.data(of: info) + part * slice, slice)
                at += slice
            }
        }
        reordered[name] = copy
        return UnsafeRawPointer(copy)
    }

    func floats(_ name: String) throws -> Tensor {
        if let (source, transform) = computed[name] {
            let values = try floats(source)
            lock.lock(); defer { lock.unlock() }
            if let done = converted[name] { return Tensor(name: name, shape: values.shape, data: done.pointer) }
            let out = try FloatBuffer(checkedCount: values.count, hugePages: false)
            for i in 0..<values.count { out[i] = transform(values.data[i]) }
            converted[name] = out
            return Tensor(name: name, shape: values.shape, data: out.pointer)
        }
        let (t, type) = try info(name)
        let raw = try bytes(name, t, type)
        if type == .f32 && Int(bitPattern: raw) % MemoryLayout<Float>.alignment == 0 {
            return Tensor(name: name, shape: t.shape, data: raw.assumingMemoryBound(to: Float.self))
        }
        lock.lock(); defer { lock.unlock() }
        if let done = converted[name] { return Tensor(name: name, shape: t.shape, data: done.pointer) }
        let out = try FloatBuffer(checkedCount: t.valueCount, hugePages: true)
        let columns = t.dimensions[0]
        WeightMatrix(raw: raw, type: type, rows: t.valueCount / max(columns, 1), columns: columns).widen(into: out.pointer)
        converted[name] = out
        return Tensor(name: name, shape: t.shape, data: out.pointer)
    }

    func storedMatrix(_ name: String, rows: Int, columns: Int) throws -> WeightMatrix? {
        if computed[name] != nil { return nil }
        let (t, type) = try info(name)
        let raw = try bytes(name, t, type)
        if type == .f32 && Int(bitPattern: raw) % MemoryLayout<Float>.alignment != 0 { return nil }
        return WeightMatrix(raw: raw, type: type, rows: rows, columns: columns)
    }
}
