import MLStoreBasics
@testable import MLStoreCore

/// Tree payload parser (spec/objects.md §6): any bytes must parse or throw, and a parsed tree re-encodes to the input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let t = try? Tree(decoding: bytes) {
        precondition(t.encoded() == bytes, "tree does not round-trip")
    }
    return 0
}
