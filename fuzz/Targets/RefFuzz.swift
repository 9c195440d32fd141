import MLStoreBasics
@testable import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

nonisolated(unsafe) let store: String = {
    var template = Array("/tmp/mlstore-fuzz-ref-XXXXXX".utf8CString)
    _ = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    let dir = String(cString: template)
    mkdir(dir + "/refs", 0o755)
    return dir
}()

/// Ref parsing: the input is both a ref name (validated) and the contents of a ref file and HEAD (read).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? Refs.validate(String(decoding: bytes, as: UTF8.self))
    for name in ["refs/x", "HEAD"] {
        let fd = open(store + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = write(fd, data, size)
        close(fd)
    }
    let refs = Refs(storeDirectory: store)
    _ = try? refs.read("refs/x")
    _ = try? refs.head()
    _ = try? WorkspaceIndex(decoding: bytes, path: "fuzz")
    return 0
}
