import MLStoreBasics

/// A remote store: the same objects and refs as a local store, reached through a transport
/// (spec/remote.md). Directory remotes are first; S3 and HTTP implement the same protocol.
public protocol RemoteTransport: Sendable {
    /// Where the remote is, for messages.
    var location: String { get }
    /// Checks the remote's format; with `create`, creates an empty store if there is none.
    /// - Throws: `.notFound` if absent (and not creating); `.unsupported` for a newer format.
    func open(create: Bool) throws
    /// Every ref (`refs/heads/…`, `refs/tags/…`, `refs/stages/…`) and its value.
    func refs() throws -> [String: ObjectID]
    /// The branch a clone checks out.
    func defaultBranch() throws -> String?
    func setDefaultBranch(_ branch: String) throws
    func contains(_ id: ObjectID) throws -> Bool
    /// Which of `ids` the remote has, in one round trip where the transport allows. Default: ``contains(_:)`` each.
    func containsMany(_ ids: [ObjectID]) throws -> [Bool]
    /// Reads an object, verified against its id; errors name the id and the remote path.
    func readEncoded(_ id: ObjectID) throws -> (object: EncodedObject, payload: [UInt8])
    /// Uploads objects (given in an order where every object follows the objects it refers to) as
    /// packs published one after another, so the remote stays closed under references at every instant.
    func upload(_ produce: (_ send: (EncodedObject) throws -> Void) throws -> Void) throws -> ObjectBatch.Stats
    /// Compare-and-swap on a remote ref.
    func updateRef(_ name: String, to new: ObjectID?, expecting: RefExpectation, actor: Signature, message: String) throws
    /// Verifies the remote (objects, packs, references, refs).
    func fsck(progress: ProgressReporter?) throws -> FsckReport
    /// An object's kind without necessarily reading its contents (for walking the object graph; the object
    /// is verified when it is read). Default: reads it.
    func kind(of id: ObjectID) throws -> ObjectKind
    /// Announces the objects about to be read with ``readEncoded(_:)``, in order, so a network transport
    /// can merge adjacent reads and read ahead. Default: nothing.
    func willRead(_ ids: [ObjectID]) throws
    /// For `push`: a lease that keeps a garbage collection of the remote from deleting what this push relies
    /// on (spec/remote.md §Garbage collection). Taken before the remote's refs are read, released after the
    /// refs moved. Default: none.
    func acquirePushLease() throws -> (any PushLease)?
}

/// A push lease (see ``RemoteTransport/acquirePushLease()``).
public protocol PushLease: Sendable {
    func release()
}

extension RemoteTransport {
    public func kind(of id: ObjectID) throws -> ObjectKind { try readEncoded(id).object.kind }
    public func willRead(_ ids: [ObjectID]) throws {}
    public func containsMany(_ ids: [ObjectID]) throws -> [Bool] { try ids.map { try contains($0) } }
    public func acquirePushLease() throws -> (any PushLease)? { nil }
}

/// A remote on a (shared) directory: a bare store. Safe with many writers: packs and objects are
/// content-addressed and published by rename, refs move by lock-file compare-and-swap.
public final class DirectoryRemote: RemoteTransport, @unchecked Sendable {
    public let path: String
    public var location: String { path }
    private var repo: Repository?

    public init(path: String) { self.path = path }

    public func open(create: Bool) throws {
        if repo != nil { return }
        if (try Sys.lstatIfExists(path + "/format")) == nil {
            guard create else {
                throw MLStoreError(.notFound, "no mlstore store at \(path)", hint: "create one with `mlstore init --bare \(path)`, or push to it (the first push creates it)")
            }
            try Repository.initializeBare(at: path)
        }
        do {
            repo = try Repository.open(at: path)
        } catch let e as MLStoreError where e.code == .unsupported {
            throw MLStoreError(.unsupported, "the remote at \(path) uses a newer store format: \(e.message)", hint: "upgrade mlstore to use this remote")
        }
    }

    func store() throws -> Repository {
        try open(create: false)
        return repo!
    }

    public func refs() throws -> [String: ObjectID] {
        let r = try store()
        var out: [String: ObjectID] = [:]
        for prefix in ["refs/heads/", "refs/tags/", "refs/stages/", "refs/runs/", "refs/models/"] {
            for (n, id) in r.refs.list(prefix) { out[n] = id }
        }
        return out
    }

    public func defaultBranch() throws -> String? {
        let r = try store()
        guard let bytes = try? Sys.readFile(r.storeDirectory + "/HEAD", limit: 4096) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \n")
        return text.hasPrefix("ref: refs/heads/") ? String(text.dropFirst("ref: refs/heads/".count)) : nil
    }

    public func setDefaultBranch(_ branch: String) throws {
        let r = try store()
        let head = r.storeDirectory + "/HEAD"
        // Created once by the first push; `link` never replaces an existing HEAD.
        let tmp = head + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Sys.writeFileAtomically(tmp, Array("ref: refs/heads/\(branch)\n".utf8))
        _ = try Sys.link(tmp, head)
        try Sys.unlink(tmp)
    }

    public func contains(_ id: ObjectID) throws -> Bool { try store().objects.contains(id) }

    public func kind(of id: ObjectID) throws -> ObjectKind { try store().objects.info(id).kind }

    public func readEncoded(_ id: ObjectID) throws -> (object: EncodedObject, payload: [UInt8]) {
        try store().objects.readEncoded(id)
    }

    public func upload(_ produce: ((EncodedObject) throws -> Void) throws -> Void) throws -> ObjectBatch.Stats {
        let batch = try store().objects.batch()
        do {
            try produce { try batch.add($0) }
            try batch.commit()
        } catch {
            batch.abandon()
            throw error
        }
        return batch.stats
    }

    public func updateRef(_ name: String, to new: ObjectID?, expecting: RefExpectation, actor: Signature, message: String) throws {
        try store().refs.update(name, to: new, expecting: expecting, actor: actor, message: message)
    }

    public func fsck(progress: ProgressReporter?) throws -> FsckReport {
        try store().fsck(progress: progress)
    }
}

#if canImport(Glibc)
    import Glibc
#endif

extension Repository {
    /// Creates a bare store for use as a remote (format file last).
    @discardableResult
    public static func initializeBare(at path: String) throws -> Repository {
        try initialize(at: path, bare: true)
    }

    /// Configured remotes: name → URL.
    public func remotes() throws -> [(name: String, url: String)] {
        let cfg = try config()
        return cfg.subsections(of: "remote").compactMap { n in cfg.get("remote.\(n).url").map { (n, $0) } }
    }

    /// Adds a remote. For `s3://` URLs, `settings` (endpoint, region, path style) and any `?key=value`
    /// settings in the URL are stored as `remote.<name>.<key>`; the URL is stored without them.
    public func addRemote(name: String, url: String, settings: S3Settings? = nil) throws {
        try Refs.validate("refs/remotes/" + name)
        guard !name.contains("/") else { throw MLStoreError(.usage, "remote name '\(name)' must not contain '/'") }
        guard try remotes().first(where: { $0.name == name }) == nil else {
            throw MLStoreError(.conflict, "remote \(name) already exists", hint: "remove it first with `mlstore remote remove \(name)`")
        }
        var stored = url
        var s3: S3Settings?
        if url.hasPrefix("s3://") {
            let remote = try S3Remote(url: url, settings: settings ?? S3Settings())
            stored = remote.location
            s3 = remote.settings
        } else {
            guard settings == nil else { throw MLStoreError(.usage, "--endpoint, --region and --path-style apply to s3:// remotes only") }
            _ = try Self.transport(for: url)
        }
        var cfg = try config()
        cfg.set("remote.\(name).url", stored)
        for (k, v) in s3?.configEntries ?? [] { cfg.set("remote.\(name).\(k)", v) }
        try cfg.save()
    }

    public func removeRemote(name: String) throws {
        guard try remotes().first(where: { $0.name == name }) != nil else {
            throw MLStoreError(.notFound, "no remote named \(name)", hint: "see `mlstore remote list`")
        }
        var cfg = try config()
        cfg.set("remote.\(name).url", nil)
        for k in S3Settings.configKeys + ["partial", "token"] { cfg.set("remote.\(name).\(k)", nil) }
        try cfg.save()
        for (ref, id) in refs.list("refs/remotes/\(name)/") {
            try refs.update(ref, to: nil, expecting: .value(id), actor: try identity(), message: "remote \(name) removed")
        }
    }

    /// The transport for a configured remote name, or a URL/path given directly.
    public func transport(named nameOrURL: String) throws -> (name: String?, transport: RemoteTransport) {
        if let r = try remotes().first(where: { $0.name == nameOrURL }) {
            if r.url.hasPrefix("s3://") {
                let cfg = try config()
                var entries: [String: String] = [:]
                for k in S3Settings.configKeys { if let v = cfg.get("remote.\(r.name).\(k)") { entries[k] = v } }
                return (r.name, try S3Remote(url: r.url, settings: try S3Settings(entries: entries), scratchDirectory: tempDirectory))
            }
            if HTTPRemote.handles(r.url) {
                let token = try config().get("remote.\(r.name).token")
                return (r.name, try HTTPRemote(url: r.url, token: token, scratchDirectory: tempDirectory))
            }
            return (r.name, try Self.transport(for: r.url, base: workspaceRoot ?? storeDirectory))
        }
        if nameOrURL.hasPrefix("s3://") {
            return (nil, try S3Remote(url: nameOrURL, scratchDirectory: tempDirectory))
        }
        if HTTPRemote.handles(nameOrURL) {
            return (nil, try HTTPRemote(url: nameOrURL, scratchDirectory: tempDirectory))
        }
        if nameOrURL.contains("/") || nameOrURL.hasPrefix(".") {
            return (nil, try Self.transport(for: nameOrURL))
        }
        throw MLStoreError(.notFound, "no remote named \(nameOrURL)", hint: "add one with `mlstore remote add \(nameOrURL) <path-or-url>`")
    }

    /// Parses a remote URL: a path, a `file://` URL, `http(s)://host:port` (`mlstore serve`), or `s3://bucket/prefix` (settings from the URL's
    /// `?endpoint=…&region=…&path-style=true` and the environment, e.g. `AWS_ENDPOINT_URL`).
    public static func transport(for url: String, base: String? = nil) throws -> RemoteTransport {
        var path = url
        if url.hasPrefix("s3://") {
            return try S3Remote(url: url)
        } else if HTTPRemote.handles(url) {
            return try HTTPRemote(url: url)
        } else if url.hasPrefix("file://") {
            path = String(url.dropFirst(7))
        } else if let colon = url.range(of: "://") {
            let scheme = url[..<colon.lowerBound]
            throw MLStoreError(.usage, "remote URL scheme '\(scheme)' is not supported", hint: "use a directory path, a file:// URL, s3://bucket/prefix or http(s)://host:port (`mlstore serve`)")
        }
        guard !path.isEmpty else { throw MLStoreError(.usage, "empty remote path") }
        let absolute = Path.absolute(path, base: base ?? Sys.currentDirectory())
        // A workspace stands for its store, as `git clone ../project` takes a work tree for its .git.
        if Sys.fileExists(absolute + "/.mlstore/format") { return DirectoryRemote(path: absolute + "/.mlstore") }
        return DirectoryRemote(path: absolute)
    }
}
