#if canImport(Glibc)
    import Glibc
#endif
internal import CMLStoreCrypto

/// Streaming SHA-256 over OpenSSL's EVP interface (SHA-NI where the CPU has it).
///
/// ```swift
/// let h = SHA256()
/// h.update(bytes)
/// let digest = h.finalize()   // 32 bytes
/// ```
public final class SHA256 {
    private let ctx: OpaquePointer

    public static let digestSize = 32

    public init() {
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed: out of memory") }
        EVP_DigestInit_ex(ctx, EVP_sha256(), nil)
        self.ctx = ctx
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public func update(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        EVP_DigestUpdate(ctx, base, buffer.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func update(_ text: String) {
        var text = text
        text.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// Finishes the digest and returns its 32 bytes; the hasher starts over afterwards.
    public func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        out.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(ctx, $0.baseAddress, &len) }
        EVP_DigestInit_ex(ctx, EVP_sha256(), nil)
        return out
    }

    /// One-shot digest.
    public static func hash(_ buffer: UnsafeRawBufferPointer) -> [UInt8] {
        let h = SHA256()
        h.update(buffer)
        return h.finalize()
    }

    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash($0) }
    }

    /// The digest and length of a file, read in 1 MiB blocks (never whole into memory).
    /// - Parameter noFollow: refuse a symlink (`O_NOFOLLOW`).
    public static func hash(file path: String, noFollow: Bool = false) throws -> (digest: [UInt8], size: Int64) {
        let fd = try Sys.open(path, O_RDONLY | (noFollow ? O_NOFOLLOW : 0))
        defer { Sys.close(fd) }
        let h = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total: Int64 = 0
        while true {
            let n = try buffer.withUnsafeMutableBytes { try Sys.read(fd, $0.baseAddress!, $0.count, path: path) }
            if n == 0 { break }
            total += Int64(n)
            buffer.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return (h.finalize(), total)
    }
}

/// MD5, used only to derive the FastCDC gear table (a published constant); never for integrity.
public enum MD5 {
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        var len: UInt32 = 0
        guard let ctx = EVP_MD_CTX_new() else { return out }
        defer { EVP_MD_CTX_free(ctx) }
        EVP_DigestInit_ex(ctx, EVP_md5(), nil)
        bytes.withUnsafeBytes { _ = EVP_DigestUpdate(ctx, $0.baseAddress, $0.count) }
        out.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(ctx, $0.baseAddress, &len) }
        return out
    }
}

/// HMAC-SHA256 (for request signing in remotes).
public enum HMACSHA256 {
    public static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                out.withUnsafeMutableBufferPointer { o in
                    _ = HMAC(
                        EVP_sha256(), k.baseAddress, Int32(k.count),
                        m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count, o.baseAddress, &len)
                }
            }
        }
        return out
    }
}
