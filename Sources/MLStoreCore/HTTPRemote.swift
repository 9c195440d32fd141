import Dispatch
import Synchronization
import Foundation
import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// A remote served by `mlstore serve` (spec/http.md): refs as JSON, objects as verified wire entries,
/// uploads as pack streams the server verifies before publishing, refs moved by compare-and-swap on the
/// server. The token comes from `MLSTORE_TOKEN` or the remote's `token` setting, never from the URL.
public final class HTTPRemote: RemoteTransport, @unchecked Sendable {
    public let baseURL: String
    public var location: String { baseURL }
    let token: String?
    let client: HTTPClient
    let scratchBase: String
    /// Objects per batched read (`POST /objects/read`); chunks are at most 256 KiB, so at most 32 MiB.
    static let batchSize = HTTPClient.tuning("MLSTORE_HTTP_BATCH", 128, min: 1)
    static let readAhead = HTTPClient.tuning("MLSTORE_HTTP_READAHEAD", 4, min: 0)
    /// Largest pack per upload request.
    static let packLimit = Int64(HTTPClient.tuning("MLSTORE_HTTP_PACK_MB", 256, min: 1)) << 20

    /// A planned batched read: ids fetched together, entries kept until read.
    final class Segment: @unchecked Sendable {
        let ids: [ObjectID]
        var started = false
        var entries: [ObjectID: WireFormat.Entry] = [:]
        var error: Error?
        let done = DispatchGroup()
        init(ids: [ObjectID]) { self.ids = ids }
    }

    private struct State {
        var head: String??
        var have = Set<ObjectID>()
        var plan: [ObjectID: Int] = [:]
        var segments: [Segment] = []
    }
    private let state = Mutex<State>(State())
    private let kindHints = ObjectGraph.KindHints()
    private let networkQueue = DispatchQueue(label: "mlstore.http.read", attributes: .concurrent)

    /// - Parameters:
    ///   - url: `http://host:port[/prefix]` or `https://…`; no credentials, query or fragment.
    ///   - token: the bearer token (default: `MLSTORE_TOKEN`).
    public init(url: String, token: String? = nil, scratchDirectory: String? = nil) throws {
        baseURL = try Self.validate(url)
        let env = ProcessInfo.processInfo.environment["MLSTORE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        self.token = env ?? token
        client = HTTPClient(timeout: 120, maxConnections: 8, maxAttempts: 4)
        scratchBase = scratchDirectory ?? NSTemporaryDirectory()
    }

    /// True for `http://` and `https://` URLs.
    public static func handles(_ url: String) -> Bool {
        let l = url.lowercased()
        return l.hasPrefix("http://") || l.hasPrefix("https://")
    }

    /// Checks an http(s) remote URL and returns it without a trailing slash.
    public static func validate(_ url: String) throws -> String {
        guard let c = URLComponents(string: url), let scheme = c.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = c.host, !host.isEmpty
        else {
            throw MLStoreError(.usage, "'\(url)' is not an http(s) remote URL", hint: "use http://host:port, as printed by `mlstore serve`")
        }
        guard c.user == nil, c.password == nil, c.query == nil, c.fragment == nil else {
            throw MLStoreError(.usage, "remote URLs must not carry credentials, a query or a fragment: \(url)",
                               hint: "give the token in MLSTORE_TOKEN or with `mlstore remote set-token NAME` (reads stdin); never in the URL")
        }
        var s = url
        while s.hasSuffix("/") { s.removeLast() }
        return s
    }

    // MARK: Requests

    private func request(_ method: String, _ path: String, body: HTTPClient.Body = .none, contentType: String? = nil,
                         headers extra: [String: String] = [:]) -> HTTPClient.Request {
        var h = extra
        if let token { h["Authorization"] = "Bearer " + token }
        if let contentType { h["Content-Type"] = contentType }
        h["Accept"] = "application/json, \(WireFormat.objectMediaType)"
        return HTTPClient.Request(method: method, url: baseURL + HTTPProtocol.apiPrefix + path, headers: h, body: body)
    }

    /// Sends (with retries on connection failures and 5xx) and turns error statuses into ``MLStoreError``s.
    /// - Parameter accept: statuses returned to the caller instead of thrown.
    @discardableResult
    func call(_ method: String, _ path: String, body: HTTPClient.Body = .none, contentType: String? = nil,
              headers: [String: String] = [:], accept: Set<Int> = [], what: String) throws -> HTTPClient.Response {
        let r = try client.send({ request(method, path, body: body, contentType: contentType, headers: headers) }, what: "\(what) (\(baseURL))")
        if (200..<300).contains(r.status) || accept.contains(r.status) { return r }
        throw error(from: r, what: what)
    }

    func error(from r: HTTPClient.Response, what: String) -> MLStoreError {
        let body = try? JSONDecoder().decode(HTTPProtocol.ErrorBody.self, from: r.body)
        switch r.status {
        case 401:
            return MLStoreError(.denied, "\(what): the server at \(baseURL) wants a token\(token == nil ? "" : ", and did not accept the one given")",
                                hint: "set MLSTORE_TOKEN, or store one with `mlstore remote set-token NAME` (tokens never go in the URL)")
        case 403:
            return MLStoreError(.denied, "\(what): \(body?.error ?? "the token's scope does not allow this")",
                                hint: body?.hint ?? "ask the server's operator for a write token")
        default:
            if let body {
                return MLStoreError(HTTPProtocol.code(named: body.code), "\(what): \(body.error)", hint: body.hint)
            }
            return MLStoreError(r.status >= 500 ? .io : .failed, "\(what): the server at \(baseURL) answered HTTP \(r.status)",
                                hint: r.status == 404 ? "is \(baseURL) an mlstore server (`mlstore serve`)?" : nil)
        }
    }

    func decode<T: Decodable>(_ type: T.Type, _ r: HTTPClient.Response, what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: r.body)
        } catch {
            throw MLStoreError(.corrupt, "\(what): the server at \(baseURL) sent an answer this mlstore cannot read (\(error))",
                               hint: "is \(baseURL) an mlstore server of a compatible version?")
        }
    }

    func json<T: Encodable>(_ value: T) throws -> HTTPClient.Body {
        .data(try JSONEncoder().encode(value))
    }

    // MARK: RemoteTransport

    public func open(create: Bool) throws {
        let r = try call("GET", "/info", what: "connecting")
        let info = try decode(HTTPProtocol.Info.self, r, what: "connecting")
        guard info.service == "mlstore" else {
            throw MLStoreError(.usage, "\(baseURL) is not an mlstore server", hint: "start one with `mlstore serve`")
        }
        guard info.protocolVersion <= HTTPProtocol.version, info.formatVersion <= Repository.formatVersion else {
            throw MLStoreError(.unsupported, "the server at \(baseURL) speaks protocol \(info.protocolVersion), format \(info.formatVersion)",
                               hint: "upgrade mlstore to use this remote")
        }
        if info.scope == "none" {
            throw MLStoreError(.denied, "the server at \(baseURL) wants a token\(token == nil ? "" : ", and did not accept the one given")",
                               hint: "set MLSTORE_TOKEN, or store one with `mlstore remote set-token NAME`")
        }
        state.withLock { $0.head = .some(info.head) }
    }

    public func refs() throws -> [String: ObjectID] {
        let listed = try decode(HTTPProtocol.Refs.self, try call("GET", "/refs", what: "listing refs"), what: "listing refs")
        state.withLock { $0.head = .some(listed.head) }
        return listed.refs
    }

    public func defaultBranch() throws -> String? {
        if let h = state.withLock({ $0.head }) { return h }
        _ = try refs()
        return state.withLock { $0.head } ?? nil
    }

    public func setDefaultBranch(_ branch: String) throws {
        try call("PUT", "/head", body: try json(HTTPProtocol.SetHead(branch: branch)), contentType: "application/json", what: "setting HEAD")
        state.withLock { $0.head = .some(branch) }
    }

    public func contains(_ id: ObjectID) throws -> Bool {
        try containsMany([id])[0]
    }

    /// Asks in one request (`POST /objects/have`) which objects the server has; answers are remembered.
    public func containsMany(_ ids: [ObjectID]) throws -> [Bool] {
        let known = state.withLock { s in ids.map { s.have.contains($0) } }
        let ask = zip(ids, known).filter { !$0.1 }.map(\.0)
        if ask.isEmpty { return known }
        var answers: [ObjectID: Bool] = [:]
        for start in stride(from: 0, to: ask.count, by: 100_000) {
            let part = ask[start..<min(ask.count, start + 100_000)]
            var body = [UInt8]()
            body.reserveCapacity(part.count * 32)
            for id in part { id.append(to: &body) }
            let r = try call("POST", "/objects/have", body: .data(Data(body)), contentType: "application/octet-stream", what: "asking which objects the server has")
            guard r.body.count == part.count else {
                throw MLStoreError(.corrupt, "the server at \(baseURL) answered \(r.body.count) flags for \(part.count) objects")
            }
            for (id, flag) in zip(part, r.body) { answers[id] = flag == 1 }
        }
        state.withLock { s in for (id, yes) in answers where yes { s.have.insert(id) } }
        return zip(ids, known).map { $0.1 || answers[$0.0] == true }
    }

    public func kind(of id: ObjectID) throws -> ObjectKind {
        if let k = kindHints[id] { return k }
        let r = try call("HEAD", "/objects/" + id.hex, what: "reading object \(id.short)")
        guard let k = r.header(HTTPProtocol.kindHeader).flatMap({ ObjectKind(rawValue: $0) }) else {
            throw MLStoreError(.corrupt, "the server at \(baseURL) did not say the kind of object \(id.hex)")
        }
        return k
    }

    public func willRead(_ ids: [ObjectID]) throws {
        var seen = Set<ObjectID>()
        let unique = ids.filter { seen.insert($0).inserted }
        state.withLock { s in
            s.plan = [:]
            s.segments = []
            for start in stride(from: 0, to: unique.count, by: Self.batchSize) {
                let part = Array(unique[start..<min(unique.count, start + Self.batchSize)])
                for id in part { s.plan[id] = s.segments.count }
                s.segments.append(Segment(ids: part))
            }
        }
    }

    private func startSegment(_ seg: Segment) {
        seg.done.enter()
        networkQueue.async {
            do {
                var body = [UInt8]()
                for id in seg.ids { id.append(to: &body) }
                let r = try self.call("POST", "/objects/read", body: .data(Data(body)), contentType: "application/octet-stream",
                                      what: "reading \(seg.ids.count) objects")
                let entries = try WireFormat.parseEntries([UInt8](r.body), location: self.baseURL)
                let byID = Dictionary(entries.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
                self.state.withLock { _ in seg.entries = byID }
            } catch {
                self.state.withLock { _ in seg.error = error }
            }
            seg.done.leave()
        }
    }

    /// The entry for `id` from its planned segment (starting it and the next few), or nil if unplanned.
    private func plannedEntry(_ id: ObjectID) throws -> WireFormat.Entry? {
        guard let (seg, toStart) = state.withLock({ s -> (Segment, [Segment])? in
            guard let n = s.plan[id] else { return nil }
            var start: [Segment] = []
            for k in n..<min(s.segments.count, n + 1 + Self.readAhead) where !s.segments[k].started {
                s.segments[k].started = true
                start.append(s.segments[k])
            }
            return (s.segments[n], start)
        }) else { return nil }
        for t in toStart { startSegment(t) }
        seg.done.wait()
        return try state.withLock { s in
            s.plan[id] = nil
            if let e = seg.error {
                // A batch cut short (the server stops a stream at an object it cannot read): read the object on
                // its own, which reports the server's precise error.
                if let m = e as? MLStoreError, m.code == .corrupt || m.code == .io { return nil }
                throw e
            }
            return seg.entries.removeValue(forKey: id)
        }
    }

    public func readEncoded(_ id: ObjectID) throws -> (object: EncodedObject, payload: [UInt8]) {
        var entry = try plannedEntry(id)
        if entry == nil {
            let r = try call("GET", "/objects/" + id.hex, what: "reading object \(id.short)")
            entry = try WireFormat.parseEntries([UInt8](r.body), location: baseURL).first
        }
        guard let entry, entry.id == id else {
            throw MLStoreError(.corrupt, "the server at \(baseURL) sent another object than \(id.hex)")
        }
        let result = try WireFormat.decode(entry, location: baseURL)
        kindHints.learn(from: result.object.kind, payload: result.payload, id: id)
        return result
    }

    public func upload(_ produce: ((EncodedObject) throws -> Void) throws -> Void) throws -> ObjectBatch.Stats {
        let dir = scratchBase + "/http-push-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try Sys.mkdirs(dir)
        defer { TempRemoval.removeTree(dir) }
        var total = ObjectBatch.Stats()
        var writer: PackWriter?
        var seen = Set<ObjectID>()
        func send() throws {
            guard let w = writer else { return }
            writer = nil
            let name = try w.finish()
            let path = dir + "/" + name + ".pack"
            let r = try call("POST", "/packs", body: .file(path), contentType: WireFormat.packMediaType, what: "uploading objects")
            let s = try decode(HTTPProtocol.Uploaded.self, r, what: "uploading objects")
            total.objectsWritten += s.objectsWritten
            total.objectsSkipped += s.objectsSkipped
            total.storedBytes += s.storedBytes
            total.payloadBytes += s.payloadBytes
            _ = try? Sys.unlink(path)
            _ = try? Sys.unlink(dir + "/" + name + ".idx")
        }
        do {
            try produce { obj in
                guard seen.insert(obj.id).inserted else { return }
                if writer == nil { writer = try PackWriter(directory: dir, durable: false) }
                try writer!.add(obj)
                if writer!.offset >= Self.packLimit { try send() }
            }
            try send()
        } catch {
            writer?.abandon()
            throw error
        }
        state.withLock { s in for id in seen { s.have.insert(id) } }
        return total
    }

    public func updateRef(_ name: String, to new: ObjectID?, expecting: RefExpectation, actor: Signature, message: String) throws {
        let body = try json(HTTPProtocol.RefUpdate(name: name, new: new, expecting: expecting, actor: actor, message: message))
        let r = try call("POST", "/refs/update", body: body, contentType: "application/json", accept: [409], what: "updating \(name)")
        if r.status == 409 {
            let e = try? JSONDecoder().decode(HTTPProtocol.ErrorBody.self, from: r.body)
            // A retried request whose first attempt went through finds the ref already moved to `new`.
            if let new, e?.current == new { return }
            throw MLStoreError(.conflict, "\(name) on \(baseURL) moved meanwhile\(e?.current.map { " (now \($0.short))" } ?? "")",
                               hint: "fetch, then try again")
        }
    }

    public func fsck(progress: ProgressReporter?) throws -> FsckReport {
        try decode(FsckReport.self, try call("GET", "/fsck", what: "checking the remote"), what: "checking the remote")
    }

    public func acquirePushLease() throws -> (any PushLease)? {
        let r = try call("POST", "/leases", what: "starting the push")
        let lease = try decode(HTTPProtocol.Lease.self, r, what: "starting the push")
        return HTTPLease(remote: self, lease: lease)
    }

    /// A push lease held by the server for us while we renew it (spec/http.md §Leases).
    final class HTTPLease: PushLease, @unchecked Sendable {
        let remote: HTTPRemote
        let id: String
        private let timer: DispatchSourceTimer
        private let released = Mutex(false)

        init(remote: HTTPRemote, lease: HTTPProtocol.Lease) {
            self.remote = remote
            id = lease.id
            let interval = max(0.05, lease.ttlSeconds / 4)
            timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
            timer.schedule(deadline: .now() + interval, repeating: interval)
            timer.setEventHandler { [remote, id] in _ = try? remote.call("POST", "/leases/" + id, what: "renewing the push lease") }
            timer.resume()
        }

        func release() {
            guard released.withLock({ r in defer { r = true }; return !r }) else { return }
            timer.cancel()
            _ = try? remote.call("DELETE", "/leases/" + id, accept: [404], what: "ending the push")
        }
    }
}
