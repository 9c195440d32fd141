import MLStoreBasics
import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh temporary directory, removed when released.
public final class TempDir: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "test") {
        var template = Array("/tmp/mlstore-\(label)-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = p.map { String(cString: $0) } ?? "/tmp/mlstore-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        if p == nil { try? Sys.mkdirs(path) }
    }

    deinit { TempDir.removeTree(path) }

    public func file(_ rel: String) -> String { path + "/" + rel }

    /// Removes a directory tree (making read-only entries writable first).
    public static func removeTree(_ path: String) {
        guard let st = try? Sys.lstatIfExists(path) else { return }
        if st.type == .directory {
            chmod(path, 0o755)
            for (name, _) in (try? Sys.listDirectory(path)) ?? [] { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

/// Deterministic data for tests and benchmarks (SplitMix64).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Fills a buffer with random bytes.
    public mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        let words = buffer.count / 8
        let p = buffer.baseAddress!
        for i in 0..<words { p.storeBytes(of: next(), toByteOffset: i * 8, as: UInt64.self) }
        for i in (words * 8)..<buffer.count { p.storeBytes(of: UInt8(truncatingIfNeeded: next()), toByteOffset: i, as: UInt8.self) }
    }

    public mutating func bytes(_ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        out.withUnsafeMutableBytes { fill($0) }
        return out
    }

    /// Fills a buffer with float32 values in [-0.1, 0.1), like trained weights (incompressible-ish).
    public mutating func fillFloats(_ buffer: UnsafeMutableRawBufferPointer) {
        let n = buffer.count / 4
        let p = buffer.baseAddress!
        var i = 0
        while i + 1 < n {
            let r = next()
            let a = Float(UInt32(truncatingIfNeeded: r) >> 8) * (0.2 / 16_777_216) - 0.1
            let b = Float(UInt32(truncatingIfNeeded: r >> 32) >> 8) * (0.2 / 16_777_216) - 0.1
            p.storeBytes(of: a.bitPattern, toByteOffset: i * 4, as: UInt32.self)
            p.storeBytes(of: b.bitPattern, toByteOffset: i * 4 + 4, as: UInt32.self)
            i += 2
        }
    }
}

public enum TestFiles {
    /// Writes `size` bytes produced by `fill` in 1 MiB blocks (streams; never holds the file in memory).
    public static func write(_ path: String, size: Int, seed: UInt64, floats: Bool = false) throws {
        var gen = SeededGenerator(seed: seed)
        let fd = try Sys.open(path, O_WRONLY | O_CREAT | O_TRUNC)
        defer { Sys.close(fd) }
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 8)
        defer { block.deallocate() }
        var left = size
        while left > 0 {
            let n = min(left, block.count)
            if floats { gen.fillFloats(block) } else { gen.fill(block) }
            try Sys.write(fd, UnsafeRawBufferPointer(rebasing: block[0..<n]), path: path)
            left -= n
        }
    }

    public static func write(_ path: String, _ bytes: [UInt8]) throws {
        try Sys.mkdirs(Path.parent(path))
        let fd = try Sys.open(path, O_WRONLY | O_CREAT | O_TRUNC)
        defer { Sys.close(fd) }
        try Sys.write(fd, bytes, path: path)
    }

    public static func write(_ path: String, _ text: String) throws { try write(path, Array(text.utf8)) }

    /// Overwrites `length` bytes at `offset` with seeded random bytes.
    public static func overwrite(_ path: String, offset: Int, length: Int, seed: UInt64) throws {
        var gen = SeededGenerator(seed: seed)
        let fd = try Sys.open(path, O_WRONLY)
        defer { Sys.close(fd) }
        let bytes = gen.bytes(length)
        guard lseek(fd, off_t(offset), SEEK_SET) >= 0 else { throw SystemError("seek", path, errno: errno) }
        try Sys.write(fd, bytes, path: path)
    }

    /// SHA-256 of a file, streamed.
    public static func sha256(_ path: String) throws -> [UInt8] { try SHA256.hash(file: path).digest }

    /// The package's `fixtures/` directory, found from this source file's location.
    public static func fixtures(file: String = #filePath) -> String {
        var dir = Path.parent(file)
        while dir != "/" && !dir.isEmpty {
            if (try? Sys.lstatIfExists(dir + "/fixtures")) != nil, (try? Sys.lstatIfExists(dir + "/Package.swift")) != nil,
                (try? Sys.lstatIfExists(dir + "/Package.swift"))! != nil
            {
                return dir + "/fixtures"
            }
            dir = Path.parent(dir)
        }
        return "fixtures"
    }
}

/// Runs a shell command, returning (status, stdout).
public func shell(_ command: String, cwd: String? = nil) -> (status: Int32, output: String) {
    let full = (cwd.map { "cd '\($0)' && " } ?? "") + command
    guard let f = popen(full + " 2>&1", "r") else { return (-1, "") }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        out += buf[0..<n]
    }
    let st = pclose(f)
    return ((st >> 8) & 0xff, String(decoding: out, as: UTF8.self))
}
