import MLStoreBasics
@testable import MLStoreCore

/// Commit, stage record and tag parsers (spec/lineage.md): parse or throw, never crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? Commit(decoding: bytes)
    _ = try? StageRecord(decoding: bytes)
    _ = try? TagObject(decoding: bytes)
    return 0
}
