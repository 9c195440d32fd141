import MLStoreBasics
@testable import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

nonisolated(unsafe) let path: String = {
    var template = Array("/tmp/mlstore-fuzz-idx-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    close(fd)
    return String(cString: template)
}()

/// Pack index reader: open (size, fan-out checks), then look up every listed id and the first 64 prefixes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let fd = open(path, O_WRONLY | O_TRUNC)
    _ = write(fd, data, size)
    close(fd)
    guard let idx = try? PackIndex(path: path) else { return 0 }
    _ = idx.verifyChecksum()
    for i in 0..<min(idx.count, 1000) {
        let id = idx.id(at: i)
        _ = idx.find(id)
        _ = idx.offset(at: i)
    }
    for b in 0..<64 { _ = idx.matching(prefix: String(b, radix: 16)) }
    return 0
}
