import Foundation
import Hummingbird
import MLStoreBasics
import MLStoreCore
import NIOCore

/// The remote API's handlers (spec/http.md). Store work runs through ``StoreServer/blocking(_:)``.
struct API {
    let server: StoreServer
    let caller: Dispatcher.Caller
    var repo: Repository { server.repo }
    var remote: DirectoryRemote { server.leases.remote }
    /// Objects per response chunk when streaming many.
    static let streamBatch = 64
    /// JSON bodies are small.
    static let jsonLimit = 1 << 20

    static func objectID(_ hex: String) throws -> ObjectID {
        guard let id = ObjectID(hex: hex), hex.count == 64 else {
            throw MLStoreError(.usage, "'\(hex.prefix(80))' is not a 64-hex object id")
        }
        return id
    }

    func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSONEncoder().encode(value)
        return Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func decodeBody<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        var req = request
        let buffer = try await req.collectBody(upTo: Self.jsonLimit)
        do {
            return try JSONDecoder().decode(type, from: Data(buffer: buffer))
        } catch {
            throw MLStoreError(.usage, "the request body is not a valid \(T.self) JSON document (\(error))", hint: "see spec/http.md")
        }
    }

    /// The whole (binary) body, at most `limit` bytes.
    func bytes(_ request: Request, limit: Int) async throws -> [UInt8] {
        var req = request
        let buffer = try await req.collectBody(upTo: limit)
        return Array(buffer.readableBytesView)
    }

    func ids(_ bytes: [UInt8]) throws -> [ObjectID] {
        guard bytes.count % 32 == 0 else { throw MLStoreError(.usage, "the body must be 32-byte object ids, back to back") }
        return bytes.withUnsafeBytes { buf in (0..<bytes.count / 32).map { ObjectID(buf, at: $0 * 32) } }
    }

    // MARK: Refs

    func info() async throws -> Response {
        let remote = self.remote
        let head = try await server.blocking { try remote.defaultBranch() }
        return try json(HTTPProtocol.Info(formatVersion: Repository.formatVersion, scope: caller.scope.description,
                                          head: caller.scope >= .read ? head : nil))
    }

    func refs() async throws -> Response {
        let remote = self.remote
        let (refs, head) = try await server.blocking { (try remote.refs(), try remote.defaultBranch()) }
        return try json(HTTPProtocol.Refs(refs: refs, head: head))
    }

    func setHead(_ request: Request) async throws -> Response {
        let body = try await decodeBody(HTTPProtocol.SetHead.self, request)
        try Refs.validate("refs/heads/" + body.branch)
        let remote = self.remote
        let head = try await server.blocking { () -> String? in
            if try remote.defaultBranch() == nil { try remote.setDefaultBranch(body.branch) }
            return try remote.defaultBranch()
        }
        return try json(HTTPProtocol.SetHead(branch: head ?? body.branch))
    }

    /// The kind a ref's target must have, by namespace.
    static func expectedKinds(_ ref: String) -> Set<ObjectKind> {
        if ref.hasPrefix("refs/heads/") || ref.hasPrefix("refs/runs/") { return [.commit] }
        if ref.hasPrefix("refs/tags/") { return [.commit, .tag] }
        if ref.hasPrefix("refs/stages/") { return [.stage] }
        if ref.hasPrefix("refs/models/") { return [.model] }
        return []
    }

    /// Compare-and-swap on one ref; the new target must be stored (the store is closed under references,
    /// so its whole history is) and of the namespace's kind.
    func updateRef(_ request: Request) async throws -> Response {
        let u = try await decodeBody(HTTPProtocol.RefUpdate.self, request)
        try Refs.validate(u.name)
        guard HTTPProtocol.refPrefixes.contains(where: { u.name.hasPrefix($0) }) else {
            throw MLStoreError(.usage, "\(u.name) is not a ref a client may move", hint: "push refs under \(HTTPProtocol.refPrefixes.joined(separator: ", "))")
        }
        let expecting = try u.expectation()
        let repo = self.repo
        let who = caller.name
        do {
            let old = try await server.blocking { () -> ObjectID? in
                if let new = u.new {
                    if !repo.objects.contains(new) { try repo.objects.reloadPacks() }
                    guard repo.objects.contains(new) else {
                        throw MLStoreError(.notFound, "\(u.name) cannot point at \(new.hex): the object is not on the server", hint: "upload it first (mlstore push does)")
                    }
                    let kind = try repo.objects.info(new).kind
                    guard Self.expectedKinds(u.name).contains(kind) else {
                        throw MLStoreError(.usage, "\(u.name) cannot point at a \(kind.rawValue) (\(new.short))")
                    }
                }
                let old = try repo.refs.read(u.name)
                try repo.refs.update(u.name, to: u.new, expecting: expecting, actor: u.actor, message: "\(u.message) (http, \(who))")
                return old
            }
            return try json(HTTPProtocol.RefUpdated(name: u.name, old: old, new: u.new))
        } catch let e as MLStoreError where e.code == .conflict {
            let current = try? await server.blocking { try repo.refs.read(u.name) }
            throw Dispatcher.Refusal(status: .conflict, error: e, current: current ?? nil)
        }
    }

    // MARK: Objects

    func have(_ request: Request) async throws -> Response {
        let wanted = try ids(try await bytes(request, limit: 32 * 200_000))
        let repo = self.repo
        let flags = try await server.blocking { () -> [UInt8] in
            var flags = wanted.map { repo.objects.contains($0) ? UInt8(1) : 0 }
            if flags.contains(0) {
                try repo.objects.reloadPacks()
                flags = wanted.map { repo.objects.contains($0) ? UInt8(1) : 0 }
            }
            return flags
        }
        return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(bytes: flags)))
    }

    /// Reads objects as wire entries (each verified before it is sent, so a damaged store is reported
    /// rather than passed on).
    static func entries(_ repo: Repository, _ ids: ArraySlice<ObjectID>) throws -> [UInt8] {
        var out: [UInt8] = []
        for id in ids { WireFormat.appendEntry(try repo.objects.readEncoded(id).object, to: &out) }
        return out
    }

    func object(_ id: ObjectID, headOnly: Bool) async throws -> Response {
        let repo = self.repo
        if headOnly {
            let info = try await server.blocking { () -> (kind: ObjectKind, size: Int) in
                if !repo.objects.contains(id) { try repo.objects.reloadPacks() }
                return try repo.objects.info(id)
            }
            var headers: HTTPFields = [.contentType: WireFormat.objectMediaType]
            headers[.init(HTTPProtocol.kindHeader)!] = info.kind.rawValue
            headers[.init(HTTPProtocol.sizeHeader)!] = String(info.size)
            return Response(status: .ok, headers: headers, body: .init())
        }
        let bytes = try await server.blocking { try Self.entries(repo, [id]) }
        return Response(status: .ok, headers: [.contentType: WireFormat.objectMediaType], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Many objects in the order asked, streamed in batches. All must exist (checked before the first byte).
    func readMany(_ request: Request) async throws -> Response {
        let wanted = try ids(try await bytes(request, limit: 32 * 100_000))
        let repo = self.repo
        let missing = try await server.blocking { () -> [ObjectID] in
            var missing = wanted.filter { !repo.objects.contains($0) }
            if !missing.isEmpty {
                try repo.objects.reloadPacks()
                missing = missing.filter { !repo.objects.contains($0) }
            }
            return missing
        }
        if let first = missing.first {
            throw MLStoreError(.notFound, "\(missing.count) of the objects asked for are not on the server (first: \(first.hex))")
        }
        let server = self.server
        let body = ResponseBody { writer in
            for start in stride(from: 0, to: wanted.count, by: Self.streamBatch) {
                let part = wanted[start..<min(wanted.count, start + Self.streamBatch)]
                let bytes = try await server.blocking { try Self.entries(repo, part) }
                try await writer.write(ByteBuffer(bytes: bytes))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: WireFormat.objectMediaType], body: body)
    }

    /// A pack stream, verified as it arrives and published only when complete (spec/http.md §Upload).
    /// Receiving the next 4 MiB overlaps with verifying the previous ones (one chunk in flight).
    func upload(_ request: Request) async throws -> Response {
        let receiver = PackStreamReceiver(repository: repo, maxBytes: server.options.maxBodyBytes, location: "the upload from \(caller.name)")
        let server = self.server
        let chunkSize = 4 << 20
        var pending: [UInt8] = []
        pending.reserveCapacity(chunkSize)
        var inflight: Task<Void, Error>?
        do {
            for try await buffer in request.body {
                buffer.withUnsafeReadableBytes { pending.append(contentsOf: $0) }
                if pending.count >= chunkSize {
                    let chunk = pending
                    pending = []
                    pending.reserveCapacity(chunkSize)
                    try await inflight?.value
                    inflight = Task { try await server.blocking { try receiver.consume(chunk) } }
                }
            }
            try await inflight?.value
            inflight = nil
            let chunk = pending
            let stats = try await server.blocking { () -> ObjectBatch.Stats in
                try receiver.consume(chunk)
                return try receiver.finish()
            }
            return try json(HTTPProtocol.Uploaded(stats))
        } catch {
            _ = try? await inflight?.value
            receiver.abandon()
            if receiver.exceededLimit, let e = error as? MLStoreError {
                throw Dispatcher.Refusal(status: .contentTooLarge, error: e)
            }
            throw error
        }
    }

    // MARK: Leases, fsck, downloads

    func newLease() async throws -> Response {
        let leases = server.leases
        let id = try await server.blocking { try leases.acquire() }
        return try json(HTTPProtocol.Lease(id: id, ttlSeconds: leases.ttl))
    }

    func renewLease(_ id: String) throws -> Response {
        guard server.leases.renew(id) else {
            throw MLStoreError(.notFound, "no push lease \(id.prefix(40)) (expired?)", hint: "push again")
        }
        return try json(HTTPProtocol.Lease(id: id, ttlSeconds: server.leases.ttl))
    }

    func releaseLease(_ id: String) throws -> Response {
        guard server.leases.release(id) else { throw MLStoreError(.notFound, "no push lease \(id.prefix(40))") }
        return Response(status: .noContent)
    }

    func fsck() async throws -> Response {
        let remote = self.remote
        let report = try await server.blocking { try remote.fsck(progress: nil) }
        return try json(report)
    }

    /// A file's content (a blob or a chunked file, reassembled and verified chunk by chunk), as an attachment.
    func download(_ id: ObjectID, name: String?, headOnly: Bool) async throws -> Response {
        let repo = self.repo
        // The file's size and the blobs that hold its bytes, in order.
        let (size, chunks) = try await server.blocking { () -> (Int64, [ObjectID]) in
            let info = try repo.objects.info(id)
            switch info.kind {
            case .blob: return (Int64(info.size), [id])
            case .chunked:
                let file = try repo.chunkedFile(id)
                return (file.fileSize, file.chunks.map(\.id))
            default:
                throw MLStoreError(.usage, "object \(id.short) is a \(info.kind.rawValue), not a file", hint: "download the files inside it one by one")
            }
        }
        let filename = Self.safeFilename(name) ?? id.hex
        var headers: HTTPFields = [.contentType: "application/octet-stream", .contentLength: String(size)]
        headers[.contentDisposition] = "attachment; filename=\"\(filename)\""
        if headOnly { return Response(status: .ok, headers: headers, body: .init()) }
        let server = self.server
        let body = ResponseBody(contentLength: Int(size)) { writer in
            for chunk in chunks {
                let payload = try await server.blocking { try repo.objects.read(chunk, as: .blob) }
                try await writer.write(ByteBuffer(bytes: payload))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// A download name without path separators, quotes or control characters.
    static func safeFilename(_ name: String?) -> String? {
        guard let name else { return nil }
        let base = name.split(separator: "/").last.map(String.init) ?? ""
        let cleaned = String(base.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7f && $0 != "\"" && $0 != "\\" })
        return cleaned.isEmpty || cleaned == "." || cleaned == ".." ? nil : cleaned
    }
}
