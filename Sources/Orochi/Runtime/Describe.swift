import Foundation

/// The lines of `orochi inspect`: what was loaded and how its memory grows with context.
public func describe(_ model: any LanguageModel) -> [(String, String)] {
    let info = model.info
    let perToken = model.stateBytes(forTokens: 2) - model.stateBytes(forTokens: 1)
    let fixed = model.stateBytes(forTokens: 0)
    var lines: [(String, String)] = [
        ("architecture", "\(info.architecture) (model_type \(info.modelType))"),
        ("parameters", "\(info.parameterCount) (\(formatBytes(info.parameterCount * 4)) as f32)"),
        ("checkpoint dtypes", info.fileDTypes.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")),
        ("vocabulary", "\(info.vocabSize)"),
        ("hidden size", "\(info.hiddenSize)"),
        ("layers", "\(info.layerCount)"),
        ("maximum context", info.maxContext == Int.max ? "unbounded (recurrent state)" : "\(info.maxContext) tokens"),
        ("allocated context", model.contextCapacity == Int.max ? "unbounded" : "\(model.contextCapacity) tokens"),
    ]
    lines += info.details
    if perToken > 0 {
        lines.append(("kv cache per token", "\(perToken) bytes (\(formatBytes(model.stateBytes(forTokens: 1024))) at 1,024 tokens)"))
    }
    if fixed > 0 || perToken == 0 {
        lines.append(("state (fixed)", "\(fixed) bytes (\(formatBytes(fixed))), the same at any context length"))
    }
    lines.append(("blas", "OpenBLAS core \(BLAS.core) (\(BLAS.coreReason))"))
    lines.append(("blas idle threads", BLAS.idleReason))
    lines.append(("orochi kernels", "\(KernelInfo.isa) (CPU: \(KernelInfo.cpuFeatures))"))
    lines.append(("products of many tokens", BLAS.gemmSummary))
    return lines
}

/// 1536 → "1.5 KiB".
public func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}
