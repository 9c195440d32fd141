#if canImport(Glibc)
    import Glibc
#endif

/// git-style lock file: `<path>.lock` created with `O_CREAT|O_EXCL`; the new content is written into it,
/// fsynced, and renamed over `<path>` on ``commit()``. A held lock is reported with its age, never broken.
public final class LockFile {
    public let path: String
    public let lockPath: String
    private var fd: Int32
    private var done = false

    /// Takes the lock or throws `.locked` naming the lock file and its age.
    public init(_ path: String) throws {
        self.path = path
        lockPath = path + ".lock"
        do {
            fd = try Sys.open(lockPath, O_WRONLY | O_CREAT | O_EXCL, mode: 0o644)
        } catch let e as SystemError where e.errno == EEXIST {
            var age = ""
            if let st = try? Sys.lstat(lockPath) {
                var now = timespec()
                clock_gettime(CLOCK_REALTIME, &now)
                let secs = (Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec) - st.mtimeNs) / 1_000_000_000
                age = " (created \(secs) s ago)"
            }
            throw MLStoreError(
                .locked, "\(lockPath) exists\(age): another mlstore process is updating \(Path.basename(path))",
                hint: "wait for it to finish; if no mlstore process is running, a crash left the lock behind: remove \(lockPath)")
        }
    }

    deinit { if !done { rollback() } }

    public func write(_ bytes: [UInt8]) throws {
        try Sys.write(fd, bytes, path: lockPath)
    }

    /// fsyncs and renames the lock file over the target, then fsyncs the directory.
    public func commit() throws {
        defer { done = true }
        do {
            try Sys.fsync(fd, path: lockPath)
            Sys.close(fd)
            fd = -1
            try Sys.rename(lockPath, path)
        } catch {
            rollback()
            throw error
        }
        let dir = Path.parent(path)
        try Sys.fsyncDirectory(dir.isEmpty ? "." : dir)
    }

    /// Releases the lock without changing the target.
    public func rollback() {
        done = true
        if fd >= 0 { Sys.close(fd) }
        fd = -1
        _ = try? Sys.unlink(lockPath)
    }
}
