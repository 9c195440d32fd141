import MLStoreBasics
@testable import MLStoreCore

/// Chunked-file payload parser: parse or throw; a parsed list re-encodes to the input and its lengths sum to the size.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let c = try? ChunkedFile(decoding: bytes) {
        precondition(c.encoded() == bytes, "chunked does not round-trip")
        precondition(c.chunks.reduce(Int64(0)) { $0 + Int64($1.length) } == c.fileSize)
    }
    return 0
}
