import Foundation
import Testing
@testable import Orochi

/// OpenBLAS's kernels are chosen by Orochi from the CPU's features when the user has not set
/// OPENBLAS_CORETYPE (Debian's 0.3.21 falls back to SSE3 "Prescott" kernels on CPUs it does not
/// know), a user's own choice is respected, and either way the products are right. Each case runs
/// the `orochi` executable, since OpenBLAS reads the variable once, when it is loaded.
struct KernelChoiceTests {
    let model = Fixtures.directory("llama", "gqa_linear_f32").path

    func blasLine(_ r: OrochiProcess.Result) -> String {
        r.stdout.split(separator: "\n").first { $0.hasPrefix("blas ") }.map(String.init) ?? ""
    }

    @Test func bestCoreWithoutTheVariable() throws {
        let r = try OrochiProcess.run(["inspect", "--model", model], environment: ["OPENBLAS_CORETYPE": nil])
        #expect(r.status == 0, "\(r.stderr)")
        let line = blasLine(r)
        switch KernelInfo.isa {
        case "avx512": #expect(line.contains("core SkylakeX (chosen by orochi"), "\(line)")
        case "avx2": #expect(line.contains("core Haswell (chosen by orochi"), "\(line)")
        default: #expect(line.contains("OpenBLAS's own choice"), "\(line)")
        }
        #expect(r.stdout.contains("orochi kernels") && r.stdout.contains(KernelInfo.isa))
        let products = KernelInfo.isa == "avx512"
            ? "orochi avx512; openblas for inner sizes above 4096, and for products of fewer than 128 rows with inner sizes of 128 or more and over 524288 weights"
            : "openblas"
        #expect(productsLine(r).hasSuffix(products), "\(productsLine(r))")
    }

    /// `bench --kernels` runs a lower family than the CPU's best (OpenBLAS gets the matching core),
    /// and refuses one the CPU lacks.
    @Test(arguments: ["portable", "avx2", "avx512"])
    func benchRunsTheKernelsAskedFor(_ family: String) throws {
        let r = try OrochiProcess.run(["bench", "--model", model, "--contexts", "8", "--decode-tokens", "2", "--repetitions", "1",
                                       "--no-bandwidth", "--breakdown-contexts", "none", "--format", "json", "--kernels", family],
                                      environment: ["OPENBLAS_CORETYPE": nil])
        let order = KernelInfo.families
        guard order.firstIndex(of: family)! <= order.firstIndex(of: KernelInfo.isa)! else {
            #expect(r.status != 0 && r.stderr.contains("this CPU's best kernels are \(KernelInfo.isa)"), "\(r.stderr)")
            return
        }
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let machine = (json?["results"] as? [String: Any])?["machine"] as? [String: Any]
        #expect(machine?["kernels"] as? String == family)
        let core = machine?["blasCore"] as? String ?? ""
        switch family {
        case "avx512": #expect(core.hasPrefix("SkylakeX (chosen by orochi for its avx512 kernels"), "\(core)")
        case "avx2": #expect(core.hasPrefix("Haswell (chosen by orochi for its avx2 kernels"), "\(core)")
        default: #expect(core.contains("OpenBLAS's own choice (orochi's portable kernels"), "\(core)")
        }
    }

    func idleLine(_ r: OrochiProcess.Result) -> String {
        r.stdout.split(separator: "\n").first { $0.hasPrefix("blas idle threads") }.map(String.init) ?? ""
    }

    /// OpenBLAS's idle threads sleep after 2^16 cycles unless the user chose otherwise (blas.c says
    /// why), and the variable is taken back out of the environment once the library is loaded, as
    /// OPENBLAS_CORETYPE is, so that processes Orochi starts see the environment it was given.
    @Test func idleThreadsSleepSoonUnlessTheUserSaysOtherwise() throws {
        let ours = try OrochiProcess.run(["inspect", "--model", model], environment: ["OPENBLAS_THREAD_TIMEOUT": nil])
        #expect(ours.status == 0 && idleLine(ours).hasSuffix("OPENBLAS_THREAD_TIMEOUT=16 set by orochi: idle threads sleep after 2^16 cycles"),
                "\(idleLine(ours))")
        let theirs = try OrochiProcess.run(["inspect", "--model", model], environment: ["OPENBLAS_THREAD_TIMEOUT": "22"])
        #expect(theirs.status == 0 && idleLine(theirs).hasSuffix("OPENBLAS_THREAD_TIMEOUT=22 set by the user"), "\(idleLine(theirs))")
        // In this process: loaded, and neither variable left behind by us.
        #expect(BLAS.loadError == nil)
        let env = ProcessInfo.processInfo.environment
        if !BLAS.idleReason.contains("set by the user") { #expect(env["OPENBLAS_THREAD_TIMEOUT"] == nil) }
        if BLAS.coreReason.hasPrefix("chosen by orochi") { #expect(env["OPENBLAS_CORETYPE"] == nil) }
    }

    func productsLine(_ r: OrochiProcess.Result) -> String {
        r.stdout.split(separator: "\n").first { $0.hasPrefix("products of many tokens") }.map(String.init) ?? ""
    }

    @Test func theUsersCoreIsRespected() throws {
        let r = try OrochiProcess.run(["inspect", "--model", model], environment: ["OPENBLAS_CORETYPE": "Prescott"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(blasLine(r).contains("core Prescott (OPENBLAS_CORETYPE=Prescott set by the user)"), "\(blasLine(r))")
        // SSE kernels on an AVX-512 CPU: the layers' products of many tokens take our kernel.
        if KernelInfo.isa == "avx512" {
            #expect(productsLine(r).contains("orochi avx512 (OpenBLAS's Prescott kernels are SSE only)"), "\(productsLine(r))")
        } else {
            #expect(productsLine(r).hasSuffix("openblas"), "\(productsLine(r))")
        }
    }

    /// Prefill under the chosen core and under the slow fallback: the same logits as transformers.
    /// (The fixture's products are small enough for our kernel either way;
    /// `ownProductsOfManyTokensMatchOpenBLAS` holds it to OpenBLAS's sgemm.)
    @Test(arguments: [nil, "Prescott"] as [String?])
    func logitsMatchUnderEitherCore(_ core: String?) throws {
        let dir = TemporaryDirectory()
        let out = dir.url.appendingPathComponent("logits.npy").path
        let reference = try Fixtures.reference(URL(fileURLWithPath: model))
        let r = try OrochiProcess.run(["forward", "--model", model, "--ids", reference.ids.map(String.init).joined(separator: " "), "--out", out],
                                      environment: ["OPENBLAS_CORETYPE": core])
        #expect(r.status == 0, "\(r.stderr)")
        let (values, _) = try NPY.decodeFloat32(Data(contentsOf: URL(fileURLWithPath: out)))
        let (expected, _) = try Fixtures.logits(URL(fileURLWithPath: model))
        #expect(values.withUnsafeBufferPointer { relativeError($0, expected[...]) } <= ParityTests.tolerance)
    }

    /// A prefill long enough for the products of many tokens (40 tokens; 14 in the fixture above):
    /// under Prescott on an AVX-512 CPU they take our kernel, and the logits equal the default's.
    @Test func longPrefillUnderPrescottMatchesTheDefault() throws {
        let dir = TemporaryDirectory()
        let ids = (0..<40).map { String(($0 * 37 + 5) % 96) }.joined(separator: " ")     // vocabulary 96, context 64
        var logits: [[Float]] = []
        for core in [nil, "Prescott"] as [String?] {
            let out = dir.url.appendingPathComponent("logits-\(core ?? "default").npy").path
            let r = try OrochiProcess.run(["forward", "--model", model, "--ids", ids, "--out", out], environment: ["OPENBLAS_CORETYPE": core])
            #expect(r.status == 0, "\(r.stderr)")
            logits.append(try NPY.decodeFloat32(Data(contentsOf: URL(fileURLWithPath: out))).0)
        }
        #expect(logits[0].count == logits[1].count && !logits[0].isEmpty)
        #expect(logits[1].withUnsafeBufferPointer { relativeError($0, logits[0][...]) } <= 1e-5)
    }

    /// `generate --verbose` names the core and our kernels after the timings.
    @Test func generateSaysWhichKernelsRan() throws {
        let r = try OrochiProcess.run(["generate", "--model", model, "--prompt-ids", "1 2 3", "--max-tokens", "2",
                                       "--temperature", "0", "--output-ids", "--verbose"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("blas: ") && r.stderr.contains("orochi kernels: \(KernelInfo.isa)"), "\(r.stderr)")
    }
}
