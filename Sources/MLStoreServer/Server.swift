import Dispatch
import Foundation
import Hummingbird
import Logging
import MLStoreBasics
import MLStoreCore
import NIOCore
import Synchronization

/// What `mlstore serve` was asked to do.
public struct ServeOptions: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (printed on start).
    public var port = 8470
    /// A workspace (its `.mlstore`) or a bare store.
    public var storePath: String
    /// `<token> <read|write> [name]` per line.
    public var tokensFile: String?
    /// Reads (UI, fetch, clone) without a token.
    public var anonymousRead = false
    /// Largest request body (one pack upload).
    public var maxBodyBytes: Int64 = 4 << 30
    /// One line per request on stderr.
    public var logRequests = true
    /// Push leases the server holds for clients expire this long after the last renewal.
    public var leaseTTLSeconds: Double = 120

    public init(storePath: String) { self.storePath = storePath }
}

/// What a request may do. Ordered: write implies read.
public enum Scope: Int, Comparable, Sendable, CustomStringConvertible {
    case none = 0, read, write
    public static func < (a: Scope, b: Scope) -> Bool { a.rawValue < b.rawValue }
    public var description: String { ["none", "read", "write"][rawValue] }
}

/// The tokens file: one `<token> <read|write> [name]` per line; `#` starts a comment. Tokens are kept
/// only as SHA-256 digests, so a lookup's timing says nothing about a token's bytes.
public struct TokenTable: Sendable {
    public struct Holder: Sendable {
        public var scope: Scope
        public var name: String
    }
    private var byDigest: [String: Holder] = [:]
    public var count: Int { byDigest.count }

    public init() {}

    public init(contentsOf path: String) throws {
        let bytes: [UInt8]
        do {
            bytes = try Sys.readFile(path, limit: 1 << 20)
        } catch let e as MLStoreError {
            throw MLStoreError(.notFound, "cannot read the tokens file \(path): \(e.message)", hint: "create it with lines `<token> <read|write> [name]`")
        }
        for (n, raw) in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if fields.isEmpty { continue }
            let whereText = "\(path):\(n + 1)"
            guard fields.count == 2 || fields.count == 3 else {
                throw MLStoreError(.usage, "\(whereText): expected `<token> <read|write> [name]`, found \(fields.count) fields")
            }
            guard fields[0].count >= 16 else {
                throw MLStoreError(.usage, "\(whereText): the token is shorter than 16 characters", hint: "generate one with `openssl rand -hex 24`")
            }
            let scope: Scope
            switch fields[1] {
            case "read": scope = .read
            case "write": scope = .write
            default: throw MLStoreError(.usage, "\(whereText): scope must be read or write, not '\(fields[1])'")
            }
            try add(token: fields[0], scope: scope, name: fields.count == 3 ? fields[2] : "token\(n + 1)", at: whereText)
        }
    }

    public mutating func add(token: String, scope: Scope, name: String, at whereText: String = "tokens") throws {
        let key = Self.digest(token)
        guard byDigest[key] == nil else { throw MLStoreError(.usage, "\(whereText): the same token is listed twice") }
        byDigest[key] = Holder(scope: scope, name: name)
    }

    public func holder(of token: String) -> Holder? { byDigest[Self.digest(token)] }

    static func digest(_ token: String) -> String { Hex.encode(SHA256.hash(Array(token.utf8))) }
}

/// `mlstore serve`: one store over HTTP, as a remote (spec/http.md) and as a web UI.
public final class StoreServer: Sendable {
    public let options: ServeOptions
    public let repo: Repository
    let tokens: TokenTable
    let ui: WebUI
    let leases: LeaseTable
    /// Store work (disk reads, hashing, SQLite) runs here, never on the event loops or the cooperative pool.
    let work = DispatchQueue(label: "mlstore.serve.work", attributes: .concurrent)

    public init(options: ServeOptions) throws {
        self.options = options
        repo = try Repository.open(at: options.storePath)
        guard (try Sys.lstatIfExists(repo.storeDirectory + "/format")) != nil else {
            throw MLStoreError(.notFound, "no mlstore store at \(options.storePath)",
                               hint: "create one with `mlstore init` (a workspace) or `mlstore init --bare DIR` (for a server)")
        }
        _ = try repo.config()
        tokens = try options.tokensFile.map { try TokenTable(contentsOf: $0) } ?? TokenTable()
        ui = WebUI(repository: repo)
        leases = LeaseTable(remote: DirectoryRemote(path: repo.storeDirectory), ttl: options.leaseTTLSeconds)
    }

    /// Runs until SIGINT or SIGTERM (requests in flight finish first). `onListening` gets the bound port.
    public func run(onListening: @escaping @Sendable (Int) -> Void) async throws {
        var logger = Logger(label: "mlstore.serve")
        logger.logLevel = .error
        let app = Application(
            responder: Dispatcher(server: self),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "mlstore"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        let leases = self.leases
        let sweeper = Task { await leases.sweep() }
        defer {
            sweeper.cancel()
            leases.releaseAll()
        }
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    /// Runs blocking store work off the event loop.
    func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            work.async { c.resume(with: Result { try body() }) }
        }
    }

    /// Prints one access-log line (stderr): time, client, method, path, status, bytes, milliseconds, who.
    func log(_ method: String, _ path: String, status: Int, bytes: Int?, started: UInt64, who: String) {
        guard options.logRequests else { return }
        let ms = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
        let time = ISO8601DateFormatter().string(from: Date())
        let line = "\(time) \(method) \(path) \(status) \(bytes.map(String.init) ?? "-") \(String(format: "%.1f", ms))ms \(who)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}

/// Push leases held on behalf of HTTP clients (spec/http.md §Leases): each is a store lease
/// (`leases/<random>.lease`, so `gc` waits for it) that the client renews; one not renewed within the
/// TTL is released by the server.
final class LeaseTable: Sendable {
    let remote: DirectoryRemote
    let ttl: Double
    private let held = Mutex<[String: (lease: any PushLease, deadline: Double)]>([:])

    init(remote: DirectoryRemote, ttl: Double) {
        self.remote = remote
        self.ttl = ttl
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    func acquire() throws -> String {
        guard let lease = try remote.acquirePushLease() else { throw MLStoreError(.failed, "the store gives no leases") }
        let id = Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255) })
        held.withLock { $0[id] = (lease, Self.now() + ttl) }
        return id
    }

    func renew(_ id: String) -> Bool {
        held.withLock { h in
            guard let e = h[id] else { return false }
            h[id] = (e.lease, Self.now() + ttl)
            return true
        }
    }

    func release(_ id: String) -> Bool {
        guard let e = held.withLock({ $0.removeValue(forKey: id) }) else { return false }
        e.lease.release()
        return true
    }

    func releaseAll() {
        let all = held.withLock { h in defer { h.removeAll() }; return h.values.map(\.lease) }
        for l in all { l.release() }
    }

    /// Expires leases whose clients stopped renewing them, until cancelled.
    func sweep() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(max(0.05, min(5, ttl / 4))))
            let now = Self.now()
            let expired = held.withLock { h in
                let gone = h.filter { $0.value.deadline < now }
                for k in gone.keys { h[k] = nil }
                return gone.values.map(\.lease)
            }
            for l in expired { l.release() }
        }
        releaseAll()
    }
}
