import Foundation

/// Large buffers on 2 MiB pages. Decode reads every weight once per token: on 4 KiB pages a
/// 25 MB model is 6,250 pages, more than the TLB holds, so each page costs a page walk; on 2 MiB
/// pages it is 13. Linux gives anonymous memory transparent huge pages when the range is 2 MiB
/// aligned and advised (MADV_HUGEPAGE, honoured unless THP is "never"); a file mapping on ext4
/// gets none. Measured with the weights read into such memory instead of mapped (paired runs,
/// AMD EPYC, 2 threads): decode +15 % for a 6.4M Llama, +11 % for a 6.4M Mamba in f16, +8 % for
/// llama-130m.
public struct HugePageRegion: @unchecked Sendable {
    /// 2 MiB aligned, `bytes` long, zero-filled until written.
    public let pointer: UnsafeMutableRawPointer
    public let bytes: Int
    /// The whole mapping (the aligned range plus the slack before and after it), for `release`.
    private let mapping: UnsafeMutableRawPointer
    private let mappingBytes: Int

    public static let pageSize = 2 << 20

    /// The smallest buffer or file worth huge pages: two of them, so that at least one whole 2 MiB
    /// page is advised (`allocate` leaves the partly used last one on 4 KiB pages). FloatBuffer's
    /// weights and checkpoint files use it.
    public static let minimumBytes = 4 << 20

    /// What /sys/kernel/mm/transparent_hugepage/enabled allows: "always", "madvise" or "never"
    /// (nil where the file is missing: not Linux, or a kernel without THP).
    public static let mode: String? = {
        guard let text = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8),
              let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]") else { return nil }
        return String(text[text.index(after: open)..<close])
    }()

    /// Whether advised memory can get huge pages at all.
    public static var available: Bool { mode == "always" || mode == "madvise" }

    /// A zeroed region of `bytes` (> 0), or nil when huge pages are not available or the mapping
    /// fails (the caller then allocates as usual).
    public static func allocate(bytes: Int) -> HugePageRegion? {
        guard available, bytes > 0, bytes <= Int.max / 2 - 2 * pageSize else { return nil }
        let aligned = (bytes + pageSize - 1) / pageSize * pageSize
        let length = aligned + pageSize   // slack to align the start
        guard let raw = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
            return nil
        }
        let start = (Int(bitPattern: raw) + pageSize - 1) / pageSize * pageSize
        let pointer = UnsafeMutableRawPointer(bitPattern: start)!
        // Advice only: without it the region still works, on small pages. Whole 2 MiB pages only:
        // the last, partly used one stays on 4 KiB pages, so that only what is written of it is
        // resident. Rounded up to a huge page, the preset weights of mamba-130m (a region per
        // matrix of 4 MiB or more) took 60 MB more than their bytes, jamba-130m's 100 MB.
        let whole = bytes / pageSize * pageSize
        if whole > 0 { _ = madvise(pointer, whole, MADV_HUGEPAGE) }
        if aligned > whole { _ = madvise(pointer + whole, aligned - whole, MADV_NOHUGEPAGE) }
        return HugePageRegion(pointer: pointer, bytes: bytes, mapping: raw, mappingBytes: length)
    }

    /// The region made read-only: a stray write then faults instead of changing weights.
    public func seal() { _ = mprotect(pointer, (bytes + Self.pageSize - 1) / Self.pageSize * Self.pageSize, PROT_READ) }

    public func release() { munmap(mapping, mappingBytes) }

    /// Bytes of this process's memory at `address` held on huge pages, from /proc/self/smaps
    /// (AnonHugePages of the mapping that contains it); nil when that cannot be read.
    public static func residentHugeBytes(containing address: UnsafeRawPointer) -> Int? {
        // Read line by line through stdio: /proc files report a size of 0, which Foundation's
        // whole-file readers take at its word.
        guard let file = fopen("/proc/self/smaps", "r") else { return nil }
        defer { fclose(file) }
        let target = UInt(bitPattern: Int(bitPattern: address))
        var inside = false
        var buffer: UnsafeMutablePointer<CChar>? = nil, capacity = 0
        defer { free(buffer) }
        while getline(&buffer, &capacity, file) > 0, let buffer {
            let line = String(cString: buffer)
            if let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " "), dash < space,
               let low = UInt(line[..<dash], radix: 16), let high = UInt(line[line.index(after: dash)..<space], radix: 16) {
                inside = low <= target && target < high
            } else if inside, line.hasPrefix("AnonHugePages:") {
                let kilobytes = line.dropFirst("AnonHugePages:".count).split(separator: " ").first.flatMap { Int($0) }
                return kilobytes.map { $0 * 1024 }
            }
        }
        return nil
    }
}
