import MLStoreBasics
@testable import MLStoreCore

/// Object decoding: byte 0 = codec, bytes 1...3 = declared payload size (≤ 16 MiB), the rest = stored bytes.
/// Must return the payload or throw; never allocate past the declared size.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 4 else { return 0 }
    let codec = data[0] & 3
    let declared = Int(data[1]) << 16 | Int(data[2]) << 8 | Int(data[3])
    let stored = UnsafeRawBufferPointer(start: data + 4, count: size - 4)
    let id = ObjectID(bytes: [UInt8](repeating: 0, count: 32))
    _ = try? ObjectCodec.decode(id: id, kind: .blob, payloadSize: declared, codec: codec, stored: stored, location: "fuzz")
    return 0
}
