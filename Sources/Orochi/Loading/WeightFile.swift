import Foundation

/// Opens a weight file read-only: its descriptor (the caller closes it) and size, with errors
/// that name the file. The start the safetensors and GGUF readers share.
func openWeightFile(_ path: String) throws -> (fd: Int32, size: Int) {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw LoadError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
    var st = stat()
    guard fstat(fd, &st) == 0 else {
        let reason = String(cString: strerror(errno))
        close(fd)
        throw LoadError.cannotOpen(path: path, reason: reason)
    }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        close(fd)
        throw LoadError.cannotOpen(path: path, reason: "not a regular file")
    }
    return (fd, Int(st.st_size))
}
