import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Every file Orochi writes (logits, states, pictures' data, pages, bench reports) goes through
/// here, so that a failed write is an error naming the file and never leaves one that looks
/// valid: the bytes go to a temporary file in the same directory, every write, the flush to disk
/// and the close are checked, and only then is it renamed over the destination. A destination
/// that exists and is not a regular file (a device such as /dev/full or /dev/stdout, a FIFO) is
/// written in place, each write checked: renaming over it would replace the device.
public enum FileOutput {
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let path: String
        public let reason: String
        public var description: String { "\(path): cannot write: \(reason)" }
    }

    public static func write(_ text: String, to path: String) throws {
        try write(Array(text.utf8), to: path)
    }

    public static func write(_ data: Data, to path: String) throws {
        try data.withUnsafeBytes { try write($0, to: path) }
    }

    public static func write(_ bytes: [UInt8], to path: String) throws {
        try bytes.withUnsafeBytes { try write($0, to: path) }
    }

    public static func write(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        func failure(_ what: String) -> Failure { Failure(path: path, reason: "\(what): \(String(cString: strerror(errno)))") }
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
            guard (info.st_mode & S_IFMT) != S_IFDIR else { throw Failure(path: path, reason: "it is a directory") }
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw failure("open") }
            if let error = writeAll(fd, bytes) { _ = close(fd); throw Failure(path: path, reason: error) }
            guard close(fd) == 0 else { throw failure("close") }
            return
        }
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        var template = Array((directory + "/." + url.lastPathComponent + ".XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw failure("cannot create a file in \(directory)") }
        let temporary = String(cString: template)
        var done = false
        defer { if !done { _ = unlink(temporary) } }
        // mkstemp makes the file 0600; a written file gets the usual 0666 less the umask.
        let mask = umask(0); umask(mask)
        _ = fchmod(fd, 0o666 & ~mask)
        if let error = writeAll(fd, bytes) { _ = close(fd); throw Failure(path: path, reason: error) }
        guard fsync(fd) == 0 else { let f = failure("fsync"); _ = close(fd); throw f }
        guard close(fd) == 0 else { throw failure("close") }
        guard rename(temporary, path) == 0 else { throw failure("rename") }
        done = true
    }

    /// Writes everything, retrying after signals and short writes; the error's text, or nil.
    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> String? {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return "write: " + String(cString: strerror(errno))
            }
            if n == 0 { return "write: no progress" }
            offset += n
        }
        return nil
    }
}
