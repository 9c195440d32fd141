import Dispatch
import MLStoreBasics
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// The gc protocol for shared stores (spec/remote.md §Garbage collection):
//
//   pusher                                   gc
//                                            create gc.lock (O_EXCL, phase mark): one gc at a time
//                                            mark from current refs, plan, write and publish new packs
//   create leases/<random>.lease             set gc.lock phase delete
//   gc.lock in phase delete? → remove the    wait until no live lease
//     lease, wait, retry                     re-read refs, re-mark (stopping at what is marked)
//   read refs, walk, upload packs            delete what is still unreachable (and old), remove gc.lock
//   move refs (compare-and-swap)
//   remove lease
//
// Each side creates its own file before looking for the other's, so at least one of them sees the other.
// Leases and the gc lock carry an expiry and are renewed while their process runs, so a crashed process
// blocks the other side only until its file expires.

/// A time-limited claim on a store, renewed in the background while held: a push lease
/// (`<store>/leases/<random>.lease`) or the gc lock (`<store>/gc.lock`).
///
/// File format (text): `mlstore-lease 1`, then `purpose <push|gc>`, `expires-ns <unix ns>`, `host <name>`,
/// `pid <n>`, `nonce <hex>`, one per line.
public final class StoreLease: @unchecked Sendable {
    public static let leaseDirectory = "leases"
    public static let gcLockName = "gc.lock"

    /// Lifetime of a lease; renewed every quarter of it. `MLSTORE_LEASE_TTL` (seconds) overrides it.
    static var ttlSeconds: Double {
        if let v = getenv("MLSTORE_LEASE_TTL").map({ String(cString: $0) }), let d = Double(v), d > 0 { return d }
        return 600
    }
    /// Clocks of the machines sharing a store may differ by up to this much.
    static let skewSeconds: Double = 120
    /// The gc lock must stay valid at least this long after the last check before deleting.
    static let deleteMarginSeconds: Double = 30

    public let path: String
    let purpose: String
    let nonce: String
    private struct State {
        var expiresNs: Int64
        var released = false
        var lost = false
        var phase: String
    }
    private let state: Mutex<State>
    /// Set once by ``startRenewing()`` right after creation, cancelled by ``release()``.
    private var timer: DispatchSourceTimer?

    struct Info {
        let path: String
        let purpose: String
        let expiresNs: Int64
        let host: String
        let pid: Int32
        let nonce: String
        /// For the gc lock: `mark` while gc marks and writes (pushes go on), `delete` when pushes must wait.
        let phase: String

        /// Whether the holder may still be working: not expired (allowing for clock skew), and — for a holder
        /// on this host — its process still exists.
        func isLive(nowNs: Int64) -> Bool {
            if !host.isEmpty && host == StoreLease.hostName && pid > 0 && kill(pid, 0) != 0 && errno == ESRCH { return false }
            return nowNs <= expiresNs + Int64(StoreLease.skewSeconds * 1e9)
        }

        var describe: String {
            let secs = (expiresNs - Repository.nowNs()) / 1_000_000_000
            let when = secs >= 0 ? "expires in \(secs) s" : "expired \(-secs) s ago"
            return "\(Path.basename(path)) (\(purpose) by pid \(pid) on \(host.isEmpty ? "?" : host), \(when))"
        }
    }

    static let hostName: String = {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count) == 0 else { return "" }
        return String(cString: buf)
    }()

    private init(path: String, purpose: String, nonce: String, expiresNs: Int64, phase: String) {
        self.path = path
        self.purpose = purpose
        self.nonce = nonce
        state = Mutex(State(expiresNs: expiresNs, phase: phase))
    }

    deinit { release() }

    static func randomHex(_ bytes: Int = 16) -> String {
        Hex.encode((0..<bytes).map { _ in UInt8.random(in: 0...255) })
    }

    func contents(expiresNs: Int64, phase: String) -> [UInt8] {
        var text = "mlstore-lease 1\npurpose \(purpose)\nexpires-ns \(expiresNs)\nhost \(Self.hostName)\npid \(getpid())\nnonce \(nonce)\n"
        if !phase.isEmpty { text += "phase \(phase)\n" }
        return Array(text.utf8)
    }

    /// Reads a lease or lock file; nil if absent. An unreadable or partly written file counts as live for an
    /// hour after its mtime (it may be a holder that has not written its content yet).
    static func read(_ path: String) -> Info? {
        guard let st = try? Sys.lstatIfExists(path) else { return nil }
        var fields: [String: String] = [:]
        if let bytes = try? Sys.readFile(path, limit: 4096) {
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
                let kv = line.split(separator: " ", maxSplits: 1)
                if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
            }
        }
        guard let e = fields["expires-ns"].flatMap({ Int64($0) }) else {
            return Info(path: path, purpose: fields["purpose"] ?? "?", expiresNs: st.mtimeNs + 3600 * 1_000_000_000, host: "", pid: 0, nonce: "",
                        phase: "")
        }
        return Info(path: path, purpose: fields["purpose"] ?? "?", expiresNs: e, host: fields["host"] ?? "",
                    pid: fields["pid"].flatMap { Int32($0) } ?? 0, nonce: fields["nonce"] ?? "", phase: fields["phase"] ?? "")
    }

    /// Creates the file (exclusively for the gc lock) and starts renewing it.
    static func create(path: String, purpose: String, exclusive: Bool, phase: String = "") throws -> StoreLease {
        let expires = Repository.nowNs() + Int64(ttlSeconds * 1e9)
        let lease = StoreLease(path: path, purpose: purpose, nonce: randomHex(), expiresNs: expires, phase: phase)
        if exclusive {
            let fd = try Sys.open(path, O_WRONLY | O_CREAT | O_EXCL, mode: 0o644)
            do {
                try Sys.write(fd, lease.contents(expiresNs: expires, phase: phase), path: path)
                try Sys.fsync(fd, path: path)
                Sys.close(fd)
            } catch {
                Sys.close(fd)
                _ = try? Sys.unlink(path)
                throw error
            }
            try? Sys.fsyncDirectory(Path.parent(path))
        } else {
            try Sys.writeFileAtomically(path, lease.contents(expiresNs: expires, phase: phase))
        }
        return lease
    }

    func startRenewing() {
        let interval = max(0.05, Self.ttlSeconds / 4)
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in self?.renew() }
        self.timer = timer
        timer.resume()
    }

    /// Pushes the expiry forward, unless the file is gone or no longer ours (then the lease is lost).
    func renew() {
        state.withLock { s in
            guard !s.released, !s.lost else { return }
            guard let info = Self.read(path), info.nonce == nonce else {
                s.lost = true
                return
            }
            let expires = Repository.nowNs() + Int64(Self.ttlSeconds * 1e9)
            if (try? Sys.writeFileAtomically(path, contents(expiresNs: expires, phase: s.phase))) != nil { s.expiresNs = expires }
        }
    }

    /// Rewrites the file with a new phase (the gc lock: `mark` → `delete`), renewing it.
    func setPhase(_ phase: String) throws {
        try state.withLock { s in
            guard !s.released, !s.lost, let info = Self.read(path), info.nonce == nonce else {
                throw MLStoreError(.locked, "\(path) was removed or replaced while gc ran; gc stopped before deleting anything",
                                   hint: "run gc again when no other gc is running")
            }
            let expires = Repository.nowNs() + Int64(Self.ttlSeconds * 1e9)
            try Sys.writeFileAtomically(path, contents(expiresNs: expires, phase: phase))
            s.expiresNs = expires
            s.phase = phase
        }
    }

    /// Stops renewing and removes the file (if it is still ours).
    public func release() {
        let first = state.withLock { s in
            defer { s.released = true }
            return !s.released
        }
        guard first else { return }
        timer?.cancel()
        if let info = Self.read(path), info.nonce == nonce { _ = try? Sys.unlink(path) }
    }

    /// Throws unless this lease's file is still ours and valid for a while (checked by gc before deleting).
    func checkStillHeld() throws {
        let now = Repository.nowNs()
        guard let info = Self.read(path), info.nonce == nonce else {
            throw MLStoreError(.locked, "\(path) was removed or replaced while gc ran; gc stopped before deleting anything",
                               hint: "run gc again when no other gc is running")
        }
        guard info.expiresNs - now > Int64(Self.deleteMarginSeconds * 1e9) else {
            throw MLStoreError(.locked, "\(path) is about to expire (was this process suspended?); gc stopped before deleting anything",
                               hint: "run gc again")
        }
    }

    // MARK: gc side

    /// Takes `<store>/gc.lock`. A lock whose holder is gone (expired, or a dead process on this host) is
    /// broken — safe because a holder checks that its lock is still its own before deleting anything.
    static func acquireGCLock(storeDirectory: String) throws -> StoreLease {
        let path = storeDirectory + "/" + gcLockName
        for _ in 0..<3 {
            do {
                let lock = try create(path: path, purpose: "gc", exclusive: true, phase: "mark")
                lock.startRenewing()
                return lock
            } catch let e as SystemError where e.errno == EEXIST {
                guard let info = read(path) else { continue }
                if info.isLive(nowNs: Repository.nowNs()) {
                    throw MLStoreError(.locked, "another gc is running on \(storeDirectory): \(info.describe)",
                                       hint: "wait for it to finish; if none is running, the lock expires by itself, or remove \(path)")
                }
                // Break a stale lock: move it aside, and make sure it was the stale one we looked at.
                let aside = path + ".stale-" + randomHex(4)
                guard (try? Sys.rename(path, aside)) != nil else { continue }
                if let moved = read(aside), moved.nonce != info.nonce {
                    _ = try? Sys.link(aside, path)  // someone else's fresh lock: put it back
                    _ = try? Sys.unlink(aside)
                    throw MLStoreError(.locked, "another gc started on \(storeDirectory) just now", hint: "run gc again later")
                }
                _ = try? Sys.unlink(aside)
            }
        }
        throw MLStoreError(.locked, "cannot take \(path)", hint: "run gc again")
    }

    /// Push leases whose holders may still be working.
    static func liveLeases(storeDirectory: String) -> [Info] {
        let dir = storeDirectory + "/" + leaseDirectory
        let now = Repository.nowNs()
        return ((try? Sys.listDirectory(dir)) ?? []).compactMap { n, _ in
            guard n.hasSuffix(".lease"), let info = read(dir + "/" + n) else { return nil }
            return info.isLive(nowNs: now) ? info : nil
        }
    }

    /// Waits (polling) until no push holds a live lease; removes dead ones. Throws `.locked` after `timeout`.
    static func waitForLeases(storeDirectory: String, timeout: Double, gcLock: StoreLease) throws -> (leases: Int, seconds: Double) {
        let dir = storeDirectory + "/" + leaseDirectory
        let start = Repository.nowNs()
        var seen = Set<String>()
        while true {
            let now = Repository.nowNs()
            var live: [Info] = []
            for (n, _) in (try? Sys.listDirectory(dir)) ?? [] where n.hasSuffix(".lease") {
                guard let info = read(dir + "/" + n) else { continue }
                if info.isLive(nowNs: now) {
                    live.append(info)
                } else {
                    _ = try? Sys.unlink(info.path)  // a crashed push: its lease expired
                }
            }
            let elapsed = Double(now - start) / 1e9
            if live.isEmpty { return (seen.count, elapsed) }
            seen.formUnion(live.map(\.path))
            if elapsed >= timeout {
                gcLock.release()
                let list = live.prefix(5).map { "  " + $0.describe }.joined(separator: "\n")
                throw MLStoreError(.locked, "\(live.count) push(es) in progress on \(storeDirectory) hold leases; gc waited \(Int(elapsed)) s and deleted nothing:\n\(list)",
                                   hint: "run gc again when the pushes finish (or with a longer --wait); a crashed push's lease expires by itself")
            }
            usleep(50_000)
        }
    }
}

// MARK: Remote side

extension DirectoryRemote {
    /// Takes a push lease (spec/remote.md §Garbage collection): `gc` does not delete anything while it is
    /// held. Waits while a gc holds the remote's `gc.lock` (at most `MLSTORE_GC_WAIT` seconds, default 600),
    /// then re-reads the pack list so objects a finished gc deleted are not taken as present.
    public func acquireLease(purpose: String = "push") throws -> StoreLease {
        let repo = try store()
        let dir = repo.storeDirectory
        try Sys.mkdirs(dir + "/" + StoreLease.leaseDirectory)
        var limit: Double = 600
        if let v = getenv("MLSTORE_GC_WAIT").map({ String(cString: $0) }), let d = Double(v), d >= 0 { limit = d }
        let start = Repository.nowNs()
        while true {
            let lease = try StoreLease.create(path: dir + "/" + StoreLease.leaseDirectory + "/" + StoreLease.randomHex() + ".lease",
                                              purpose: purpose, exclusive: false)
            // A gc that is still marking does not stop pushes (it re-marks before deleting); one that deletes does.
            if let gc = StoreLease.read(dir + "/" + StoreLease.gcLockName), gc.phase != "mark", gc.isLive(nowNs: Repository.nowNs()) {
                lease.release()
                if Double(Repository.nowNs() - start) / 1e9 >= limit {
                    throw MLStoreError(.locked, "a garbage collection is running on \(path): \(gc.describe)",
                                       hint: "push again when it finishes; if no gc is running, its lock expires by itself (or remove \(dir)/\(StoreLease.gcLockName))")
                }
                usleep(UInt32.random(in: 50_000...200_000))
                continue
            }
            lease.startRenewing()
            try repo.objects.reloadPacks()
            return lease
        }
    }

    /// Garbage-collects the remote with the lock and lease protocol (roots: its refs).
    public func collectGarbage(_ options: GCOptions = GCOptions()) throws -> GCReport {
        var report = try store().collectGarbage(options)
        report.store = path
        return report
    }
}

extension StoreLease: PushLease {}

extension DirectoryRemote {
    /// A lease on the store, so `gc --remote` never deletes what this push relies on.
    public func acquirePushLease() throws -> (any PushLease)? { try acquireLease(purpose: "push") }
}

extension Repository {
    /// `gc --remote <name|path>`: garbage-collects a directory remote with the lease protocol.
    public func collectRemoteGarbage(_ nameOrURL: String, options: GCOptions = GCOptions()) throws -> GCReport {
        let (_, transport) = try self.transport(named: nameOrURL)
        return try Self.collectRemoteGarbage(transport, options: options)
    }

    public static func collectRemoteGarbage(_ transport: RemoteTransport, options: GCOptions = GCOptions()) throws -> GCReport {
        guard let d = transport as? DirectoryRemote else {
            let hint = transport is HTTPRemote
                ? "run `mlstore gc --remote <store directory>` on the server's machine; it honours the leases of pushes in progress"
                : "S3 garbage collection is not implemented yet (spec/remote.md §Garbage collection)"
            throw MLStoreError(.usage, "gc --remote supports directory remotes; \(transport.location) is not one", hint: hint)
        }
        try d.open(create: false)
        return try d.collectGarbage(options)
    }
}
