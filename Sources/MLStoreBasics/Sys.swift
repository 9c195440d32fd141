#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Synchronization

/// A failed system call: the operation, the path it touched, and `errno`.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let path: String
    public let errno: Int32

    public init(_ operation: String, _ path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        var text = "could not \(operation) \(path): \(reason)"
        switch errno {
        case ENOSPC: text += "\nhint: the disk is full; free space and run the command again (nothing was lost)"
        case EACCES, EPERM: text += "\nhint: check the permissions of \(path)"
        case EROFS: text += "\nhint: the file system is read-only"
        default: break
        }
        return text
    }
}

/// The one place every file-system call of mlstore goes through.
///
/// Each call retries `EINTR`, reports failures as ``SystemError`` naming the path, and passes through the
/// fault injector so tests can make any call fail (see spec/guarantees.md). Configure faults with the
/// environment variable `MLSTORE_FAULTS`, a comma-separated list of `op:ERRNO:n` rules meaning "the n-th
/// call of op fails with ERRNO" (`n+` for the n-th and every later call), e.g. `fsync:EIO:2,rename:ENOSPC:1+`.
/// `write:SHORT:n` makes the n-th write transfer only half its bytes (callers must cope).
public enum Sys {
    // MARK: Fault injection

    public enum Op: String, Sendable, CaseIterable {
        case open, read, write, fsync, rename, link, unlink, mkdir, rmdir, symlink, stat, readdir, chmod, truncate
    }

    struct Rule: Sendable {
        let op: Op
        let errno: Int32  // 0 = short write
        let nth: Int
        let andAfter: Bool
    }

    final class Injector: Sendable {
        let rules: [Rule]
        let counts = Mutex<[Op: Int]>([:])

        init(spec: String) {
            var rules: [Rule] = []
            for part in spec.split(separator: ",") {
                let f = part.split(separator: ":").map(String.init)
                guard f.count == 3, let op = Op(rawValue: f[0]) else { continue }
                let andAfter = f[2].hasSuffix("+")
                guard let nth = Int(andAfter ? String(f[2].dropLast()) : f[2]) else { continue }
                let code: Int32
                switch f[1] {
                case "ENOSPC": code = ENOSPC
                case "EIO": code = EIO
                case "EINTR": code = EINTR
                case "EACCES": code = EACCES
                case "EDQUOT": code = EDQUOT
                case "EROFS": code = EROFS
                case "SHORT": code = 0
                default: continue
                }
                rules.append(Rule(op: op, errno: code, nth: nth, andAfter: andAfter))
            }
            self.rules = rules
        }

        /// Returns the errno to inject for this call (0 for "short"), or nil for none.
        func fault(_ op: Op) -> Int32? {
            guard rules.contains(where: { $0.op == op }) else { return nil }
            let n = counts.withLock { c -> Int in
                c[op, default: 0] += 1
                return c[op]!
            }
            for r in rules where r.op == op && (r.nth == n || (r.andAfter && n >= r.nth)) { return r.errno }
            return nil
        }
    }

    static let injector: Injector? = {
        guard let spec = getenv("MLSTORE_FAULTS").map({ String(cString: $0) }), !spec.isEmpty else { return nil }
        return Injector(spec: spec)
    }()

    @inline(__always)
    static func inject(_ op: Op, _ path: String) throws {
        if let injector, let e = injector.fault(op), e != 0 {
            if e == EINTR { return }  // EINTR is retried by every call; injecting it must be harmless
            throw SystemError(op.rawValue, path, errno: e)
        }
    }

    @inline(__always)
    static func retry<T: BinaryInteger>(_ body: () -> T) -> T {
        while true {
            let r = body()
            if r == -1 && errno == EINTR { continue }
            return r
        }
    }

    // MARK: Descriptors

    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> Int32 {
        try inject(.open, path)
        let fd = retry { Glibc.open(path, flags | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemError("open", path, errno: errno) }
        return fd
    }

    public static func openat(_ dir: Int32, _ name: String, _ flags: Int32, mode: mode_t = 0o644, display: String)
        throws -> Int32
    {
        try inject(.open, display)
        let fd = retry { Glibc.openat(dir, name, flags | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemError("open", display, errno: errno) }
        return fd
    }

    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Reads up to `count` bytes; returns 0 at end of file.
    public static func read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int, path: String) throws -> Int {
        try inject(.read, path)
        let n = retry { Glibc.read(fd, buffer, count) }
        guard n >= 0 else { throw SystemError("read", path, errno: errno) }
        return n
    }

    /// Reads until `count` bytes or end of file; returns the number read.
    public static func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int, path: String) throws
        -> Int
    {
        var done = 0
        while done < count {
            let n = try read(fd, buffer + done, count - done, path: path)
            if n == 0 { break }
            done += n
        }
        return done
    }

    public static func pread(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int, offset: Int64, path: String)
        throws -> Int
    {
        try inject(.read, path)
        var done = 0
        while done < count {
            let n = retry { Glibc.pread(fd, buffer + done, count - done, off_t(offset) + off_t(done)) }
            guard n >= 0 else { throw SystemError("read", path, errno: errno) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes all of `buffer`, continuing after short writes.
    public static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            var want = buffer.count - done
            if let injector, let e = injector.fault(.write) {
                if e == 0 { want = max(1, want / 2) } else if e != EINTR { throw SystemError("write", path, errno: e) }
            }
            let n = retry { Glibc.write(fd, base + done, want) }
            guard n >= 0 else { throw SystemError("write", path, errno: errno) }
            done += n
        }
    }

    public static func write(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { try write(fd, $0, path: path) }
    }

    public static func fsync(_ fd: Int32, path: String) throws {
        try inject(.fsync, path)
        guard retry({ Glibc.fsync(fd) }) == 0 else { throw SystemError("fsync", path, errno: errno) }
    }

    /// fsyncs a directory so a rename or create inside it is durable.
    public static func fsyncDirectory(_ path: String) throws {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fsync(fd, path: path)
    }

    public static func ftruncate(_ fd: Int32, _ size: Int64, path: String) throws {
        try inject(.truncate, path)
        guard retry({ Glibc.ftruncate(fd, off_t(size)) }) == 0 else {
            throw SystemError("truncate", path, errno: errno)
        }
    }

    public static func fchmod(_ fd: Int32, _ mode: mode_t, path: String) throws {
        try inject(.chmod, path)
        guard retry({ Glibc.fchmod(fd, mode) }) == 0 else { throw SystemError("chmod", path, errno: errno) }
    }

    // MARK: Names

    public static func rename(_ from: String, _ to: String) throws {
        try inject(.rename, to)
        guard retry({ Glibc.rename(from, to) }) == 0 else { throw SystemError("rename \(from) to", to, errno: errno) }
    }

    public static func renameat(_ dir: Int32, _ from: String, _ to: String, display: String) throws {
        try inject(.rename, display)
        guard retry({ Glibc.renameat(dir, from, dir, to) }) == 0 else {
            throw SystemError("rename to", display, errno: errno)
        }
    }

    /// Creates a hard link; returns false if `to` already exists.
    public static func link(_ from: String, _ to: String) throws -> Bool {
        try inject(.link, to)
        if retry({ Glibc.link(from, to) }) == 0 { return true }
        if errno == EEXIST { return false }
        throw SystemError("link", to, errno: errno)
    }

    /// Removes a file; returns false if it did not exist.
    @discardableResult
    public static func unlink(_ path: String) throws -> Bool {
        try inject(.unlink, path)
        if retry({ Glibc.unlink(path) }) == 0 { return true }
        if errno == ENOENT { return false }
        throw SystemError("remove", path, errno: errno)
    }

    @discardableResult
    public static func unlinkat(_ dir: Int32, _ name: String, directory: Bool = false, display: String) throws -> Bool {
        try inject(.unlink, display)
        if retry({ Glibc.unlinkat(dir, name, directory ? AT_REMOVEDIR : 0) }) == 0 { return true }
        if errno == ENOENT { return false }
        throw SystemError("remove", display, errno: errno)
    }

    /// Creates a directory; returns false if something already exists at the path.
    @discardableResult
    public static func mkdir(_ path: String, mode: mode_t = 0o755) throws -> Bool {
        try inject(.mkdir, path)
        if retry({ Glibc.mkdir(path, mode) }) == 0 { return true }
        if errno == EEXIST { return false }
        throw SystemError("create directory", path, errno: errno)
    }

    @discardableResult
    public static func mkdirat(_ dir: Int32, _ name: String, mode: mode_t = 0o755, display: String) throws -> Bool {
        try inject(.mkdir, display)
        if retry({ Glibc.mkdirat(dir, name, mode) }) == 0 { return true }
        if errno == EEXIST { return false }
        throw SystemError("create directory", display, errno: errno)
    }

    /// Creates `path` and its missing parents.
    public static func mkdirs(_ path: String, mode: mode_t = 0o755) throws {
        if (try? lstat(path)).map({ $0.isDirectory }) == true { return }
        let parent = Path.parent(path)
        if !parent.isEmpty && parent != path && parent != "/" { try mkdirs(parent, mode: mode) }
        try mkdir(path, mode: mode)
    }

    public static func rmdir(_ path: String) throws {
        try inject(.rmdir, path)
        guard retry({ Glibc.rmdir(path) }) == 0 else { throw SystemError("remove directory", path, errno: errno) }
    }

    public static func symlinkat(_ target: String, _ dir: Int32, _ name: String, display: String) throws {
        try inject(.symlink, display)
        guard retry({ Glibc.symlinkat(target, dir, name) }) == 0 else {
            throw SystemError("create symlink", display, errno: errno)
        }
    }

    public static func readlink(_ path: String) throws -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = buf.withUnsafeMutableBufferPointer { Glibc.readlink(path, $0.baseAddress!, $0.count - 1) }
        guard n >= 0 else { throw SystemError("read symlink", path, errno: errno) }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Metadata

    public static func lstat(_ path: String) throws -> FileStat {
        try inject(.stat, path)
        var st = stat()
        guard retry({ Glibc.lstat(path, &st) }) == 0 else { throw SystemError("stat", path, errno: errno) }
        return FileStat(st)
    }

    /// lstat that returns nil when the path does not exist.
    public static func lstatIfExists(_ path: String) throws -> FileStat? {
        try inject(.stat, path)
        var st = stat()
        if retry({ Glibc.lstat(path, &st) }) == 0 { return FileStat(st) }
        if errno == ENOENT || errno == ENOTDIR { return nil }
        throw SystemError("stat", path, errno: errno)
    }

    public static func fstat(_ fd: Int32, path: String) throws -> FileStat {
        var st = stat()
        guard retry({ Glibc.fstat(fd, &st) }) == 0 else { throw SystemError("stat", path, errno: errno) }
        return FileStat(st)
    }

    public static func fstatat(_ dir: Int32, _ name: String, display: String) throws -> FileStat? {
        try inject(.stat, display)
        var st = stat()
        if retry({ Glibc.fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) }) == 0 { return FileStat(st) }
        if errno == ENOENT { return nil }
        throw SystemError("stat", display, errno: errno)
    }

    /// Lists a directory: (name, type) pairs without `.` and `..`, in no particular order.
    public static func listDirectory(_ path: String) throws -> [(name: String, type: FileType?)] {
        try inject(.readdir, path)
        guard let dir = opendir(path) else { throw SystemError("list directory", path, errno: errno) }
        defer { closedir(dir) }
        var out: [(String, FileType?)] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            let t: FileType?
            switch Int32(ent.pointee.d_type) {
            case Int32(DT_REG): t = .regular
            case Int32(DT_DIR): t = .directory
            case Int32(DT_LNK): t = .symlink
            case Int32(DT_UNKNOWN): t = nil
            default: t = .other
            }
            out.append((name, t))
        }
        return out
    }

    // MARK: Whole files

    /// Reads a whole (small) file.
    public static func readFile(_ path: String, limit: Int = 1 << 30) throws -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        let size = Int(try fstat(fd, path: path).size)
        guard size <= limit else {
            throw MLStoreError(.failed, "\(path) is \(size) bytes, more than the \(limit) this file may have")
        }
        var out = [UInt8](repeating: 0, count: size)
        let n = try out.withUnsafeMutableBytes { try readFully(fd, $0.baseAddress!, size, path: path) }
        if n < size { out.removeSubrange(n...) }
        return out
    }

    public static func fileExists(_ path: String) -> Bool {
        (try? lstatIfExists(path)) != nil && (try? lstatIfExists(path)) != .some(nil)
    }

    /// Writes a file atomically and durably: temp file in the same directory, fsync, rename, fsync directory.
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let dir = Path.parent(path)
        let tmp = Path.join(dir.isEmpty ? "." : dir, ".tmp-\(Path.basename(path))-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let fd = try open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode: mode)
        do {
            try write(fd, bytes, path: tmp)
            try fsync(fd, path: tmp)
            close(fd)
            try rename(tmp, path)
        } catch {
            close(fd)
            _ = try? unlink(tmp)
            throw error
        }
        try fsyncDirectory(dir.isEmpty ? "." : dir)
    }

    /// Current working directory.
    public static func currentDirectory() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return "." }
        return String(cString: buf)
    }

    public static func changeDirectory(_ path: String) throws {
        guard chdir(path) == 0 else { throw SystemError("change directory to", path, errno: errno) }
    }

    // MARK: Memory maps

    /// Maps a file read-only. The mapping lives as long as the returned object.
    public static func mapFile(_ path: String) throws -> MappedFile {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        let size = Int(try fstat(fd, path: path).size)
        if size == 0 { return MappedFile(base: nil, size: 0) }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw SystemError("map", path, errno: errno)
        }
        return MappedFile(base: UnsafeRawPointer(p), size: size)
    }
}

/// A read-only memory map; unmapped when released.
public final class MappedFile: @unchecked Sendable {
    public let base: UnsafeRawPointer?
    public let size: Int
    init(base: UnsafeRawPointer?, size: Int) {
        self.base = base
        self.size = size
    }
    deinit { if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) } }
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }
}

public enum FileType: Sendable, Equatable {
    case regular, directory, symlink, other
}

/// The parts of `struct stat` mlstore uses.
public struct FileStat: Sendable, Equatable {
    public var type: FileType
    public var mode: UInt32  // permission bits
    public var size: Int64
    public var mtimeNs: Int64
    public var ctimeNs: Int64
    public var inode: UInt64
    public var device: UInt64

    public init(type: FileType, mode: UInt32, size: Int64, mtimeNs: Int64, ctimeNs: Int64, inode: UInt64, device: UInt64) {
        self.type = type
        self.mode = mode
        self.size = size
        self.mtimeNs = mtimeNs
        self.ctimeNs = ctimeNs
        self.inode = inode
        self.device = device
    }

    init(_ st: stat) {
        switch st.st_mode & S_IFMT {
        case S_IFREG: type = .regular
        case S_IFDIR: type = .directory
        case S_IFLNK: type = .symlink
        default: type = .other
        }
        mode = UInt32(st.st_mode & 0o7777)
        size = Int64(st.st_size)
        mtimeNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        ctimeNs = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        inode = UInt64(st.st_ino)
        device = UInt64(st.st_dev)
    }

    public var isDirectory: Bool { type == .directory }
    public var isExecutable: Bool { mode & 0o100 != 0 }
}
