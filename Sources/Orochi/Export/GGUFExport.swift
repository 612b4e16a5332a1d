import Foundation
import OrochiKernels

/// `orochi quantize`: a model (a GGUF file, or a Hugging Face Llama, Mamba or Jamba directory with
/// a SentencePiece tokenizer or none) → a GGUF file in one of llama.cpp's file types, with the metadata and tokenizer
/// llama.cpp reads. From a GGUF file every metadata key is copied, as `llama-quantize` does; from
/// a directory they are written as llama.cpp's convert_hf_to_gguf.py writes them. Weights are
/// quantized by llama.cpp's reference algorithms (`quantizeRows`) into llama.cpp's mixture
/// (`QuantizationPlan`), so the file has the types and, from the same float weights, the bytes
/// `llama-quantize` gives.
public enum GGUFExport {
    /// One tensor to write: its GGUF name, its shape (outermost first), its stored type and bytes
    /// when they can be copied as they are, and its float32 values in the file's row order.
    struct SourceTensor {
        let name: String
        let shape: [Int]
        let stored: (type: WeightType, raw: UnsafeRawPointer)?
        let floats: () throws -> [Float]
    }

    public struct Summary {
        /// Each tensor's name and the type written, in file order.
        public var types: [(name: String, type: String)] = []
        public var bytes = 0
        public var requantized = 0
        /// Whether the file has `tokenizer.ggml.*` (a directory without a tokenizer gives none).
        public var hasTokenizer = true
    }

    public enum ExportError: Error, CustomStringConvertible {
        case unsupported(path: String, detail: String)
        case io(path: String, detail: String)
        public var description: String {
            switch self {
            case let .unsupported(path, detail): return "\(path): \(detail)"
            case let .io(path, detail): return "\(path): \(detail)"
            }
        }
    }

    /// Quantizes `input` (a GGUF file or a model directory) into a new GGUF file at `output`.
    @discardableResult
    public static func quantize(input: String, output: String, target: QuantizationTarget,
                                progress: ((String, String) -> Void)? = nil) throws -> Summary {
        let (metadata, tensors) = GGUFFile.isGGUF(input) ? try fromGGUF(input) : try fromDirectory(input)
        guard URL(fileURLWithPath: output).standardizedFileURL.path != URL(fileURLWithPath: input).standardizedFileURL.path else {
            throw ExportError.io(path: output, detail: "the output would overwrite the input")
        }
        var writer = GGUFWriter()
        // As llama-quantize: every key copied in order, but these two moved to the end (gguf_set_val).
        writer.metadata = metadata.filter { !["general.file_type", "general.quantization_version", "split.no", "split.count", "split.tensors.count"].contains($0.0) }
        let alignment = metadata.first { $0.0 == "general.alignment" }?.1.integer ?? 32
        guard alignment > 0, alignment % 8 == 0, alignment <= 1 << 20 else {
            throw ExportError.unsupported(path: input, detail: "'general.alignment' \(alignment) is not a positive multiple of 8 up to 1 MiB")
        }
        writer.alignment = alignment
        writer.add("general.quantization_version", .uint32(2))
        writer.add("general.file_type", .uint32(target.fileType))

        let order = QuantizationPlan.llamaOrder(tensors.map(\.name))
        let byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0) })
        var plan = QuantizationPlan(target: target, names: order)
        var planned: [(tensor: SourceTensor, type: WeightType)] = []
        for name in order {
            let t = byName[name]!
            let columns = t.shape.last ?? 1
            let kept = t.stored?.type ?? .f32
            let type = plan.type(of: name, dimensions: t.shape.count, columns: columns) ?? (kept.isQuantized && columns % kept.blockValues != 0 ? .f32 : kept)
            planned.append((t, type))
        }
        let sizes = planned.map { p -> (name: String, shape: [Int], type: GGMLType, bytes: Int) in
            let columns = p.tensor.shape.last ?? 1
            return (p.tensor.name, p.tensor.shape, GGMLType.of(p.type), p.tensor.shape.dropLast().reduce(1, *) * p.type.rowBytes(columns))
        }

        let temporary = output + ".part"
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
            throw ExportError.io(path: temporary, detail: "cannot create the file")
        }
        var summary = Summary()
        summary.hasTokenizer = metadata.contains { $0.0 == "tokenizer.ggml.model" }
        do {
            defer { try? handle.close() }
            let header = writer.header(sizes: sizes)
            try handle.write(contentsOf: header)
            var written = 0
            for ((tensor, type), size) in zip(planned, sizes) {
                let padding = (alignment - written % alignment) % alignment
                if padding > 0 { try handle.write(contentsOf: [UInt8](repeating: 0, count: padding)); written += padding }
                let bytes = try encode(tensor, as: type)
                precondition(bytes.count == size.bytes, "\(tensor.name): \(bytes.count) bytes for \(size.bytes)")
                try handle.write(contentsOf: bytes)
                written += bytes.count
                if let stored = tensor.stored, stored.type.isQuantized, stored.type != type { summary.requantized += 1 }
                summary.types.append((tensor.name, GGMLType.of(type).name))
                progress?(tensor.name, GGMLType.of(type).name)
            }
            summary.bytes = header.count + written
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw ExportError.io(path: output, detail: "writing failed: \(error)")
        }
        try? FileManager.default.removeItem(atPath: output)
        do { try FileManager.default.moveItem(atPath: temporary, toPath: output) } catch {
            throw ExportError.io(path: output, detail: "cannot move \(temporary) into place: \(error)")
        }
        return summary
    }

    /// A tensor's bytes in `type`: copied when it is stored so, else from its float32 values. (A
    /// BF16 tensor is only ever kept as stored: no target writes BF16.)
    static func encode(_ tensor: SourceTensor, as type: WeightType) throws -> [UInt8] {
        let columns = tensor.shape.last ?? 1, rows = tensor.shape.dropLast().reduce(1, *)
        if let stored = tensor.stored, stored.type == type {
            return Array(UnsafeRawBufferPointer(start: stored.raw, count: rows * type.rowBytes(columns)))
        }
        let values = try tensor.floats()
        precondition(values.count == rows * columns)
        switch type {
        case .f32:
            return values.withUnsafeBytes { Array($0) }
        case .f16:
            var half = [UInt16](repeating: 0, count: values.count)
            values.withUnsafeBufferPointer { src in half.withUnsafeMutableBufferPointer { narrowToHalf(src.baseAddress!, into: $0.baseAddress!, count: values.count) } }
            return half.withUnsafeBytes { Array($0) }
        default:
            guard type.isQuantized else { throw ExportError.unsupported(path: tensor.name, detail: "cannot write \(type) from floats") }
            // Rows are independent: split over the cores (the K-quants' search costs ~0.1 µs a weight).
            var out = [UInt8](repeating: 0, count: rows * type.rowBytes(columns))
            let chunks = min(rows, 4 * ProcessInfo.processInfo.activeProcessorCount)
            let rowBytes = type.rowBytes(columns)
            var done = [Bool](repeating: false, count: chunks)
            values.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBytes { dst in
                    done.withUnsafeMutableBufferPointer { ok in
                        let base = src.baseAddress!, target = dst.baseAddress!, ok = ok.baseAddress!
                        DispatchQueue.concurrentPerform(iterations: chunks) { c in
                            let r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks
                            ok[c] = quantizeRows(type, base + r0 * columns, into: target + r0 * rowBytes, rows: r1 - r0, columns: columns)
                        }
                    }
                }
            }
            guard !done.contains(false) else { throw ExportError.unsupported(path: tensor.name, detail: "no quantizer for \(type)") }
            return out
        }
    }

    // MARK: - From a GGUF file

    static func fromGGUF(_ path: String) throws -> ([(String, GGUFValue)], [SourceTensor]) {
        let file = try GGUFFile.open(path)
        if let arch = try file.string("general.architecture") {
            if arch == "falcon" {
                throw ExportError.unsupported(path: path, detail: "falcon files have their own mixture in llama.cpp: not supported")
            }
            if let experts = try file.integer("\(arch).expert_count"), experts > 1 {
                throw ExportError.unsupported(path: path, detail: "a mixture of \(experts) experts: not supported")
            }
        }
        let metadata = file.keys.map { ($0, file.metadata[$0]!) }
        let tensors = try file.tensors.map { t -> SourceTensor in
            guard let type = t.type.weightType else {
                throw ExportError.unsupported(path: path, detail: "tensor '\(t.name)' is \(t.type.name), a type Orochi does not read")
            }
            // The closure holds the file, and with it the mapping `raw` points into.
            return SourceTensor(name: t.name, shape: t.shape, stored: (type, file.data(of: t))) {
                let raw = file.data(of: t)
                var values = [Float](repeating: 0, count: t.valueCount)
                let columns = t.dimensions[0]
                values.withUnsafeMutableBufferPointer {
                    WeightMatrix(raw: raw, type: type, rows: t.valueCount / max(columns, 1), columns: columns).widen(into: $0.baseAddress!)
                }
                return values
            }
        }
        return (metadata, tensors)
    }

    // MARK: - From a Hugging Face directory

    /// How one architecture's directory becomes GGUF: its metadata, and each Hugging Face tensor's
    /// GGUF name and the change its values need (nil: skipped).
    struct DirectoryLayout {
        var metadata: [(String, GGUFValue)]
        var tensor: (_ name: String, _ shape: [Int]) throws -> (name: String, shape: [Int], change: (([Float]) throws -> [Float])?)?
        /// Tensors made of several of the directory's (Jamba's experts, stacked).
        var extra: (Checkpoint) throws -> [SourceTensor] = { _ in [] }
    }

    static func fromDirectory(_ path: String) throws -> ([(String, GGUFValue)], [SourceTensor]) {
        let directory = URL(fileURLWithPath: path)
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw LoadError.missingFile(path: configURL.path, detail: "neither a GGUF file nor a model directory with config.json")
        }
        let modelType = try readJSONConfig(ConfigHeader.self, from: configURL).model_type ?? "?"
        var layout: DirectoryLayout
        switch modelType {
        case "llama", "mistral": layout = try llamaLayout(try readJSONConfig(LlamaConfig.self, from: configURL), directory: directory, configPath: configURL.path)
        case "mamba": layout = try mambaLayout(try readJSONConfig(MambaConfig.self, from: configURL), directory: directory, configPath: configURL.path)
        case "mamba2": layout = try mamba2Layout(try readJSONConfig(Mamba2Config.self, from: configURL), directory: directory, configPath: configURL.path)
        case "jamba": layout = try jambaLayout(try readJSONConfig(JambaConfig.self, from: configURL), directory: directory, configPath: configURL.path)
        default:
            throw ExportError.unsupported(path: configURL.path, detail: "model_type '\(modelType)': orochi quantize converts Llama (llama, mistral), Mamba, Mamba-2 and Jamba directories and any GGUF file; convert others with llama.cpp's convert_hf_to_gguf.py and quantize the GGUF")
        }
        let vocabSize = layout.metadata.first { $0.0.hasSuffix(".vocab_size") }?.1.integer
        layout.metadata += try sentencePieceMetadata(directory, vocabSize: vocabSize ?? 0)

        let checkpoint = try Checkpoint(directory: directory, memory: .mapped)
        var tensors: [SourceTensor] = []
        var seen: [String: String] = [:]
        for name in checkpoint.tensorNames {
            guard let shape = checkpoint.shape(of: name), let (mapped, newShape, change) = try layout.tensor(name, shape) else { continue }
            guard mapped != name else {
                throw ExportError.unsupported(path: checkpoint.location, detail: "tensor '\(name)' has no GGUF name in a \(modelType) model")
            }
            if let other = seen[mapped] {
                throw ExportError.unsupported(path: checkpoint.location, detail: "tensors '\(other)' and '\(name)' both map to '\(mapped)'")
            }
            seen[mapped] = name
            tensors.append(SourceTensor(name: mapped, shape: newShape, stored: nil) {
                let t = try checkpoint.floats(name)
                let values = Array(UnsafeBufferPointer(start: t.data, count: t.count))
                return try change?(values) ?? values
            })
        }
        for t in try layout.extra(checkpoint) {
            guard seen[t.name] == nil else { throw ExportError.unsupported(path: checkpoint.location, detail: "two tensors map to '\(t.name)'") }
            seen[t.name] = t.name
            tensors.append(t)
        }
        return (layout.metadata, tensors)
    }

    /// Llama as convert_hf_to_gguf.py's LlamaModel writes it, query and key rows interleaved.
    static func llamaLayout(_ config: LlamaConfig, directory: URL, configPath: String) throws -> DirectoryLayout {
        try config.validate(path: configPath)
        let (theta, scaling) = try config.rope(path: configPath)
        guard case .none = scaling else {
            throw ExportError.unsupported(path: configPath, detail: "rope scaling is not written to GGUF yet")
        }
        if config.attention_bias == true || config.mlp_bias == true {
            throw ExportError.unsupported(path: configPath, detail: "attention or MLP biases are not written to GGUF yet")
        }
        if config.window != nil {
            throw ExportError.unsupported(path: configPath, detail: "a sliding window is not written to GGUF yet")
        }
        let arch = "llama"
        let metadata: [(String, GGUFValue)] = [
            ("general.architecture", .string(arch)), ("general.type", .string("model")),
            ("general.name", .string(directory.standardizedFileURL.lastPathComponent)),
            ("\(arch).block_count", .uint32(UInt32(config.num_hidden_layers))),
            ("\(arch).context_length", .uint32(UInt32(config.max_position_embeddings ?? 2048))),
            ("\(arch).embedding_length", .uint32(UInt32(config.hidden_size))),
            ("\(arch).feed_forward_length", .uint32(UInt32(config.intermediate_size))),
            ("\(arch).attention.head_count", .uint32(UInt32(config.num_attention_heads))),
            ("\(arch).attention.head_count_kv", .uint32(UInt32(config.kvHeads))),
            ("\(arch).rope.freq_base", .float32(Float(theta))),
            ("\(arch).attention.layer_norm_rms_epsilon", .float32(config.eps)),
            ("\(arch).attention.key_length", .uint32(UInt32(config.headDim))),
            ("\(arch).attention.value_length", .uint32(UInt32(config.headDim))),
            ("\(arch).vocab_size", .uint32(UInt32(config.vocab_size))),
            ("\(arch).rope.dimension_count", .uint32(UInt32(config.headDim))),
        ]
        return DirectoryLayout(metadata: metadata) { name, shape in
            if name == "lm_head.weight" && config.tiedEmbeddings { return nil }
            if name.hasSuffix("rotary_emb.inv_freq") { return nil }
            // llama.cpp rotates interleaved pairs: each head's query and key rows are reordered so.
            let heads = name.hasSuffix("self_attn.q_proj.weight") ? config.num_attention_heads
                : name.hasSuffix("self_attn.k_proj.weight") ? config.kvHeads : nil
            guard let heads else { return (GGUFModels.ggufName(name), shape, nil) }
            return (GGUFModels.ggufName(name), shape, { try interleave($0, rows: shape[0], columns: shape.count > 1 ? shape[1] : 1, heads: heads, name: name) })
        }
    }

    /// Mamba as convert_hf_to_gguf.py's MambaModel writes it: A stored as −exp(A_log), the conv
    /// filter [E, 1, K] as [E, K].
    static func mambaLayout(_ config: MambaConfig, directory: URL, configPath: String) throws -> DirectoryLayout {
        try config.validate(path: configPath)
        let arch = "mamba"
        let metadata: [(String, GGUFValue)] = ssmHeader(arch, directory: directory, dim: config.hidden_size, layers: config.num_hidden_layers,
                                                         kernel: config.conv_kernel, inner: config.innerSize, state: config.state_size,
                                                         timeStepRank: config.dtRank) + [
            ("\(arch).attention.layer_norm_rms_epsilon", .float32(Float(config.layer_norm_epsilon))),
            ("\(arch).ssm.dt_b_c_rms", .bool(false)),
            ("\(arch).vocab_size", .uint32(UInt32(config.vocab_size))),
        ]
        return DirectoryLayout(metadata: metadata) { name, shape in
            if name == "lm_head.weight" && config.tie_word_embeddings { return nil }
            let mapped = GGUFModels.ggufMambaName(name)
            if mapped.hasSuffix(".ssm_a_log") {
                return (String(mapped.dropLast(4)), shape, { $0.map { -expf($0) } })
            }
            if mapped.hasSuffix(".ssm_conv1d.weight") { return (mapped, shape.filter { $0 != 1 }, nil) }
            return (mapped, shape, nil)
        }
    }

    /// The metadata convert_hf_to_gguf.py's Mamba and Mamba-2 models both begin with (a context
    /// of 2^20, no feed-forward or attention heads; `time_step_rank` is Mamba-2's head count).
    static func ssmHeader(_ arch: String, directory: URL, dim: Int, layers: Int, kernel: Int, inner: Int, state: Int,
                          timeStepRank: Int) -> [(String, GGUFValue)] {
        [
            ("general.architecture", .string(arch)), ("general.type", .string("model")),
            ("general.name", .string(directory.standardizedFileURL.lastPathComponent)),
            ("\(arch).context_length", .uint32(1 << 20)),
            ("\(arch).embedding_length", .uint32(UInt32(dim))),
            ("\(arch).feed_forward_length", .uint32(0)),
            ("\(arch).attention.head_count", .uint32(0)),
            ("\(arch).block_count", .uint32(UInt32(layers))),
            ("\(arch).ssm.conv_kernel", .uint32(UInt32(kernel))),
            ("\(arch).ssm.inner_size", .uint32(UInt32(inner))),
            ("\(arch).ssm.state_size", .uint32(UInt32(state))),
            ("\(arch).ssm.time_step_rank", .uint32(UInt32(timeStepRank))),
        ]
    }

    /// Mamba-2 as convert_hf_to_gguf.py's Mamba2Model writes it: the head count as
    /// `ssm.time_step_rank`, A as −exp(A_log) and D as [H, 1], the gated norm's weight as [G, E/G].
    /// The chunk size and Δ limit have no GGUF key (llama.cpp keeps neither): a limit that clamps is refused.
    static func mamba2Layout(_ config: Mamba2Config, directory: URL, configPath: String) throws -> DirectoryLayout {
        try config.validate(path: configPath)
        guard config.time_step_limit[0].value == 0, config.time_step_limit[1].value == .infinity else {
            throw ExportError.unsupported(path: configPath, detail: "time_step_limit \(config.time_step_limit.map(\.value)) clamps Δ, and GGUF's mamba2 has no key for it (llama.cpp would run the model unclamped)")
        }
        let arch = "mamba2", e = config.innerSize, g = config.n_groups
        let metadata: [(String, GGUFValue)] = ssmHeader(arch, directory: directory, dim: config.hidden_size, layers: config.num_hidden_layers,
                                                         kernel: config.conv_kernel, inner: e, state: config.state_size,
                                                         timeStepRank: config.num_heads) + [
            ("\(arch).ssm.group_count", .uint32(UInt32(g))),
            ("\(arch).attention.layer_norm_rms_epsilon", .float32(Float(config.layer_norm_epsilon))),
            ("\(arch).vocab_size", .uint32(UInt32(config.vocab_size))),
        ]
        return DirectoryLayout(metadata: metadata) { name, shape in
            if name == "lm_head.weight" && config.tie_word_embeddings { return nil }
            let mapped = GGUFModels.ggufMambaName(name)
            if mapped.hasSuffix(".ssm_a_log") { return (String(mapped.dropLast(4)), shape + [1], { $0.map { -expf($0) } }) }
            if mapped.hasSuffix(".ssm_d") { return (mapped, shape + [1], nil) }
            if mapped.hasSuffix(".ssm_norm.weight") { return (mapped, [g, e / g], nil) }
            if mapped.hasSuffix(".ssm_conv1d.weight") { return (mapped, shape.filter { $0 != 1 }, nil) }
            return (mapped, shape, nil)
        }
    }

    /// Jamba as convert_hf_to_gguf.py's JambaModel writes it: KV heads per layer (0 for Mamba
    /// layers), A as −exp(A_log), each MoE layer's experts stacked into one [X, F, D] tensor per
    /// projection.
    static func jambaLayout(_ config: JambaConfig, directory: URL, configPath: String) throws -> DirectoryLayout {
        try config.validate(path: configPath)
        let arch = "jamba", layers = config.num_hidden_layers
        let metadata: [(String, GGUFValue)] = [
            ("general.architecture", .string(arch)), ("general.type", .string("model")),
            ("general.name", .string(directory.standardizedFileURL.lastPathComponent)),
            ("\(arch).block_count", .uint32(UInt32(layers))),
            ("\(arch).context_length", .uint32(UInt32(config.max_position_embeddings))),
            ("\(arch).embedding_length", .uint32(UInt32(config.hidden_size))),
            ("\(arch).feed_forward_length", .uint32(UInt32(config.intermediate_size))),
            ("\(arch).attention.head_count", .uint32(UInt32(config.num_attention_heads))),
            ("\(arch).attention.head_count_kv", .array(elementType: 5, (0..<layers).map { .int32(config.isAttention($0) ? Int32(config.num_key_value_heads) : 0) })),
            ("\(arch).ssm.conv_kernel", .uint32(UInt32(config.mamba_d_conv))),
            ("\(arch).ssm.inner_size", .uint32(UInt32(config.innerSize))),
            ("\(arch).ssm.state_size", .uint32(UInt32(config.mamba_d_state))),
            ("\(arch).ssm.time_step_rank", .uint32(UInt32(config.dtRank))),
            ("\(arch).attention.layer_norm_rms_epsilon", .float32(Float(config.rms_norm_eps))),
            ("\(arch).expert_count", .uint32(UInt32(config.num_experts))),
            ("\(arch).expert_used_count", .uint32(UInt32(config.num_experts_per_tok))),
            ("\(arch).vocab_size", .uint32(UInt32(config.vocab_size))),
        ]
        var layout = DirectoryLayout(metadata: metadata) { name, shape in
            if name == "lm_head.weight" && config.tie_word_embeddings { return nil }
            let mapped = GGUFModels.ggufJambaName(name)
            if mapped.contains("_exps.") { return nil }   // stacked in `extra`
            if mapped.hasSuffix(".ssm_a_log") { return (String(mapped.dropLast(4)), shape, { $0.map { -expf($0) } }) }
            if mapped.hasSuffix(".ssm_conv1d.weight") { return (mapped, shape.filter { $0 != 1 }, nil) }
            return (mapped, shape, nil)
        }
        layout.extra = { checkpoint in
            var stacked: [SourceTensor] = []
            for l in 0..<layers where config.hasExperts(l) {
                for part in ["gate", "up", "down"] {
                    let names = (0..<config.num_experts).map { "model.layers.\(l).feed_forward.experts.\($0).\(part)_proj.weight" }
                    guard let shape = checkpoint.shape(of: names[0]), names.allSatisfy({ checkpoint.shape(of: $0) == shape }) else {
                        throw ExportError.unsupported(path: checkpoint.location, detail: "layer \(l): the experts' \(part)_proj tensors are missing or differ in shape")
                    }
                    stacked.append(SourceTensor(name: "blk.\(l).ffn_\(part)_exps.weight", shape: [names.count] + shape, stored: nil) {
                        try names.flatMap { name -> [Float] in
                            let t = try checkpoint.floats(name)
                            return Array(UnsafeBufferPointer(start: t.data, count: t.count))
                        }
                    })
                }
            }
            return stacked
        }
        return layout
    }

    /// Hugging Face's query/key rows (head h, half s, i) → llama.cpp's (h, i, s).
    static func interleave(_ values: [Float], rows: Int, columns: Int, heads: Int, name: String) throws -> [Float] {
        guard heads > 0, rows % (2 * heads) == 0 else {
            throw ExportError.unsupported(path: name, detail: "\(rows) rows are not \(heads) heads of an even size")
        }
        let headRows = rows / heads, half = headRows / 2
        var out = [Float](repeating: 0, count: values.count)
        for h in 0..<heads {
            for s in 0..<2 {
                for i in 0..<half {
                    let from = (h * headRows + s * half + i) * columns, to = (h * headRows + 2 * i + s) * columns
                    out[to..<(to + columns)] = values[from..<(from + columns)]
                }
            }
        }
        return out
    }

    /// `tokenizer.ggml.*` for a directory's tokenizer.model, as convert_hf_to_gguf.py writes them
    /// (every piece with its score and type, padded to the model's vocabulary with unused `[PADn]`
    /// tokens; BOS/EOS policy from tokenizer_config.json), with one change: a unigram model is
    /// written as model `t5` (llama.cpp's unigram tokenizer) with its normalization map, not as
    /// `llama`, whose merge-by-score reading tokenizes most lines differently from sentencepiece.
    static func sentencePieceMetadata(_ directory: URL, vocabSize wanted: Int) throws -> [(String, GGUFValue)] {
        let modelURL = directory.appendingPathComponent("tokenizer.model")
        guard FileManager.default.fileExists(atPath: modelURL.path) else {
            // Weights alone (the test fixtures): a file Orochi computes with but llama.cpp refuses.
            if !FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path) { return [] }
            throw ExportError.unsupported(path: directory.path, detail: "a tokenizer.json and no tokenizer.model: orochi quantize writes SentencePiece tokenizers (use llama.cpp's convert_hf_to_gguf.py)")
        }
        let tokenizer = try SentencePieceTokenizer(contentsOf: modelURL)
        let proto = tokenizer.proto
        let vocabSize = max(wanted, proto.pieces.count)
        guard proto.pieces.count <= wanted else {
            throw ExportError.unsupported(path: modelURL.path, detail: "\(proto.pieces.count) pieces for a vocabulary of \(wanted)")
        }
        var tokens: [GGUFValue] = [], scores: [GGUFValue] = [], types: [GGUFValue] = []
        for piece in proto.pieces {
            tokens.append(.string(String(decoding: piece.text, as: UTF8.self)))
            scores.append(.float32(piece.score))
            types.append(.int32(Int32(piece.type.rawValue)))
        }
        for i in proto.pieces.count..<vocabSize {
            tokens.append(.string("[PAD\(i)]")); scores.append(.float32(-10000)); types.append(.int32(5))
        }
        let unigram = proto.modelType == .unigram
        var metadata: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string(unigram ? "t5" : "llama")), ("tokenizer.ggml.pre", .string("default")),
            ("tokenizer.ggml.tokens", .array(elementType: 8, tokens)),
            ("tokenizer.ggml.scores", .array(elementType: 6, scores)),
            ("tokenizer.ggml.token_type", .array(elementType: 5, types)),
        ]
        for (key, id) in [("bos", proto.bosId), ("eos", proto.eosId), ("unknown", proto.unkId), ("padding", proto.padId)] where id >= 0 {
            metadata.append(("tokenizer.ggml.\(key)_token_id", .uint32(UInt32(id))))
        }
        metadata += [("tokenizer.ggml.add_bos_token", .bool(tokenizer.addBosToken)),
                     ("tokenizer.ggml.add_eos_token", .bool(tokenizer.addEosToken))]
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        if let data = FileManager.default.contents(atPath: configURL.path),
           let config = (try? StrictJSON.parse([UInt8](data))) as? [String: Any] {
            if let add = config["add_bos_token"] as? Bool { metadata[metadata.count - 2].1 = .bool(add) }
            if let add = config["add_eos_token"] as? Bool { metadata[metadata.count - 1].1 = .bool(add) }
            if let template = config["chat_template"] as? String { metadata.append(("tokenizer.chat_template", .string(template))) }
        }
        if unigram {
            metadata.append(("tokenizer.ggml.add_space_prefix", .bool(proto.normalizer.addDummyPrefix)))
            metadata.append(("tokenizer.ggml.remove_extra_whitespaces", .bool(proto.normalizer.removeExtraWhitespaces)))
            if !proto.normalizer.precompiledCharsmap.isEmpty {
                metadata.append(("tokenizer.ggml.precompiled_charsmap", .array(elementType: 0, proto.normalizer.precompiledCharsmap.map { .uint8($0) })))
            }
            if proto.treatWhitespaceAsSuffix || !proto.normalizer.escapeWhitespaces {
                throw ExportError.unsupported(path: modelURL.path, detail: "whitespace as suffix or unescaped: not written to GGUF")
            }
        }
        return metadata
    }
}
