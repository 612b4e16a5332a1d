import Foundation
import Testing
@testable import Orochi

/// Sizes and values from config.json are range-checked, with overflow-checked products, before
/// anything is allocated; the errors name the key (issue 11).
struct ConfigHardeningTests {
    static let llama = Fixtures.directory("llama", "mha_tied_f32")
    static let mamba = Fixtures.directory("mamba", "k4_auto_tied_f32")

    /// A copy of a fixture with its config.json edited.
    static func copy(_ fixture: URL, config change: (inout [String: Any]) -> Void) throws -> TemporaryDirectory {
        let dir = TemporaryDirectory()
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: fixture.appendingPathComponent("config.json"))) as! [String: Any]
        change(&config)
        _ = dir.write("config.json", try JSONSerialization.data(withJSONObject: config))
        _ = dir.write("model.safetensors", try Data(contentsOf: fixture.appendingPathComponent("model.safetensors")))
        return dir
    }

    static func loadError(_ fixture: URL, context: Int? = nil, _ change: (inout [String: Any]) -> Void) throws -> String? {
        let dir = try copy(fixture, config: change)
        do { _ = try ModelRegistry.load(directory: dir.url, context: context); return nil } catch { return "\(error)" }
    }

    @Test func sizesHelperChecksOverflowAndMemory() throws {
        #expect(try Sizes.product([3, 4, 5], "x") == 60)
        #expect(throws: SizeError.overflow(what: "a × b", factors: [1 << 40, 1 << 40])) { try Sizes.product([1 << 40, 1 << 40], "a × b") }
        #expect(throws: SizeError.self) { try Sizes.sum([Int.max, 1], "s") }
        #expect(Sizes.physicalMemory > 1 << 20)
        #expect(throws: SizeError.exceedsMemory(what: "cache", bytes: 10, available: 5)) { try Sizes.checkFits(10, "cache", available: 5) }
        #expect(throws: FloatBuffer.AllocationError.invalidCount(-1)) { _ = try FloatBuffer(checkedCount: -1) }
        #expect(throws: FloatBuffer.AllocationError.self) { _ = try FloatBuffer(checkedCount: Int.max / 2) }
        #expect(try FloatBuffer(checkedCount: 3).count == 3)
    }

    @Test func llamaSizesOutOfRange() throws {
        let negative = try Self.loadError(Self.llama) { $0["max_position_embeddings"] = -1 }
        #expect(negative?.contains("'max_position_embeddings' must be positive, found -1") == true, "\(negative ?? "loaded")")
        let zero = try Self.loadError(Self.llama) { $0["max_position_embeddings"] = 0 }
        #expect(zero?.contains("max_position_embeddings") == true, "\(zero ?? "loaded")")
        for key in ["head_dim", "hidden_size"] {
            let huge = try Self.loadError(Self.llama) { $0[key] = 1 << 40 }
            #expect(huge?.contains("config.json") == true && huge?.contains("too large") == true || huge?.contains("physical memory") == true,
                    "\(key): \(huge ?? "loaded")")
        }
        let vocab = try Self.loadError(Self.llama) { $0["vocab_size"] = 1 << 62 }
        #expect(vocab?.contains("vocab_size × hidden_size") == true, "\(vocab ?? "loaded")")
    }

    /// Without max_position_embeddings a --context is limited only by memory: a KV cache that
    /// cannot fit is refused with the bytes it needs, before anything is allocated.
    @Test(arguments: [1_000_000_000, 1 << 40, 1 << 62, Int.max])
    func hugeContextIsRefused(_ context: Int) throws {
        let message = try Self.loadError(Self.llama, context: context) { $0.removeValue(forKey: "max_position_embeddings") }
        #expect(message?.contains("physical memory") == true || message?.contains("too large") == true, "\(message ?? "loaded")")
        #expect(message?.contains("\(context)") == true, "names the context: \(message ?? "loaded")")
    }

    @Test func realValuesOutOfRange() throws {
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("rope_theta", { $0["rope_parameters"] = ["rope_type": "default", "rope_theta": 0.0] }),
            ("rope_theta", { $0["rope_parameters"] = ["rope_type": "default", "rope_theta": -10000.0] }),
            ("rope_theta", { $0.removeValue(forKey: "rope_parameters"); $0["rope_theta"] = -1.0 }),
            ("factor", { $0["rope_parameters"] = ["rope_type": "linear", "rope_theta": 10000.0, "factor": 0.0] }),
            ("factor", { $0["rope_parameters"] = ["rope_type": "linear", "rope_theta": 10000.0, "factor": -2.0] }),
            ("low_freq_factor", { $0["rope_parameters"] = ["rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                                          "high_freq_factor": 1.0, "original_max_position_embeddings": 32.0] }),
            ("rms_norm_eps", { $0["rms_norm_eps"] = -1e-5 }),
            ("sliding_window", { $0["sliding_window"] = -4 }),
        ]
        for (key, change) in cases {
            let message = try Self.loadError(Self.llama, change)
            #expect(message?.contains(key) == true && message?.contains("config.json") == true, "\(key): \(message ?? "loaded")")
        }
        let eps = try Self.loadError(Self.mamba) { $0["layer_norm_epsilon"] = -1.0 }
        #expect(eps?.contains("layer_norm_epsilon") == true, "\(eps ?? "loaded")")
    }

    /// expand × hidden_size overflowing used to read as "must be positive, found 0".
    @Test func mambaOverflowIsReportedAsOverflow() throws {
        let message = try Self.loadError(Self.mamba) { $0.removeValue(forKey: "intermediate_size"); $0["expand"] = 1 << 62 }
        #expect(message?.contains("expand × hidden_size") == true && message?.contains("too large") == true, "\(message ?? "loaded")")
        #expect(message?.contains("found 0") == false)
        for (key, value) in [("state_size", 1 << 40), ("vocab_size", 1 << 60), ("time_step_rank", 1 << 61), ("conv_kernel", 1 << 59)] {
            let m = try Self.loadError(Self.mamba) { $0[key] = value }
            #expect(m?.contains("too large") == true || m?.contains("physical memory") == true, "\(key): \(m ?? "loaded")")
        }
    }

    /// A fractional or out-of-range number names the key and says an integer was expected.
    @Test func nonIntegerSizesNameTheKey() throws {
        let fractional = try Self.loadError(Self.llama) { $0["hidden_size"] = 256.5 }
        #expect(fractional?.contains("'hidden_size'") == true && fractional?.contains("integer") == true, "\(fractional ?? "loaded")")
        #expect(fractional?.contains("not valid JSON") == false)
        let mamba = try Self.loadError(Self.mamba) { $0["state_size"] = 16.5 }
        #expect(mamba?.contains("'state_size'") == true && mamba?.contains("integer") == true, "\(mamba ?? "loaded")")
        let nested = try Self.loadError(Self.llama) { $0["rope_parameters"] = ["rope_type": 3] }
        #expect(nested?.contains("rope_parameters.rope_type") == true, "\(nested ?? "loaded")")
        // Invalid JSON is still reported as such.
        let dir = TemporaryDirectory()
        _ = dir.write("config.json", Data("{\"model_type\": \"llama\", ".utf8))
        do { _ = try ModelRegistry.load(directory: dir.url); Issue.record("loaded") } catch {
            #expect("\(error)".contains("not valid JSON"), "\(error)")
        }
    }
}

/// Sizes from flags are checked against what the process may allocate, not only physical memory
/// (hardening issue, class 7): under `ulimit -v` a context that fits the machine but not the
/// limit was a fatal out-of-memory in FloatBuffer; it is now refused by name.
struct AddressSpaceLimitTests {
    @Test func allocatableIsBoundedByTheMachine() {
        let a = Sizes.allocatable()
        #expect(a > 0 && a <= Sizes.physicalMemory)
        // /proc's number after a tab, with or without spaces (an AddressSanitizer build's VmSize fills the field).
        #expect(Sizes.procField("Name:\tx\nVmSize:\t21474836480 kB\n", "VmSize:") == 21_474_836_480)
        #expect(Sizes.procField("VmSize:\t  123456 kB", "VmSize:") == 123_456)
        #expect(Sizes.procField("MemAvailable:   22000000 kB", "MemAvailable:") == 22_000_000)
        #expect(Sizes.procField("VmRSS:\t1 kB", "VmSize:") == nil)
    }

    /// This process under an address-space limit 1 GiB above its current size (set and restored
    /// here, in process: an AddressSanitizer build reserves terabytes and cannot start a child under
    /// `ulimit -v`): a context whose cache fits the machine but not the limit is refused by name
    /// before anything is allocated. `generate --context 16000000` under `ulimit -v 1572864` died
    /// with a fatal error in FloatBuffer on 4a0489c.
    @Test func aContextPastTheAddressSpaceLimitIsRefused() throws {
        var config = try readJSONConfig(LlamaConfig.self, from: Fixtures.directory("llama", "gqa_linear_f32").appendingPathComponent("config.json"))
        config.max_position_embeddings = nil
        var saved = rlimit()
        try #require(getrlimit(Int32(RLIMIT_AS.rawValue), &saved) == 0)
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let used = try #require(Sizes.procField(status, "VmSize:")) * 1024
        var lowered = saved
        lowered.rlim_cur = rlim_t(used + (1 << 30))
        try #require(setrlimit(Int32(RLIMIT_AS.rawValue), &lowered) == 0)
        let allocatable = Sizes.allocatable()
        let outcome = Result { try BlockModel(config: config, checkpoint: nil, configPath: "config.json", context: 16_000_000) }
        setrlimit(Int32(RLIMIT_AS.rawValue), &saved)
        #expect(allocatable <= 1 << 30)
        switch outcome {
        case .success: Issue.record("a 12-GiB cache was allocated under a 1-GiB limit")
        case let .failure(error):
            #expect("\(error)".contains("address-space limit") && "\(error)".contains("16000000 tokens"), "\(error)")
        }
    }
}
