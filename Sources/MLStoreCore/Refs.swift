import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// What a ref update expects to find (compare-and-swap).
public enum RefExpectation: Sendable, Equatable {
    /// Overwrite whatever is there (still under the lock).
    case any
    /// The ref must not exist yet.
    case absent
    /// The ref must hold exactly this value.
    case value(ObjectID)
}

/// What HEAD names.
public enum HeadState: Sendable, Equatable {
    /// On a branch (which may not have commits yet).
    case branch(String, ObjectID?)
    case detached(ObjectID)

    public var commit: ObjectID? {
        switch self {
        case .branch(_, let id): id
        case .detached(let id): id
        }
    }
    public var branchName: String? { if case .branch(let b, _) = self { b } else { nil } }
}

/// Refs under `<store>/refs` and `HEAD` (spec/refs.md): one file per ref holding `<hex>\n`, updated
/// by compare-and-swap under `<ref>.lock`, with a reflog line appended for every change.
public struct Refs: Sendable {
    public let storeDirectory: String

    public init(storeDirectory: String) { self.storeDirectory = storeDirectory }

    /// Checks git's ref-name rules (plus: no empty components) for a full name like `refs/heads/main`.
    public static func validate(_ name: String) throws {
        func bad(_ why: String) -> MLStoreError {
            MLStoreError(.usage, "'\(name)' is not a valid ref name: \(why)", hint: "use letters, digits, '-', '_', '.' and '/' (no '..', no leading '.', no trailing '.lock')")
        }
        guard !name.isEmpty, name.utf8.count <= 255 else { throw bad("empty or too long") }
        guard !name.hasSuffix("/"), !name.hasPrefix("/"), !name.hasSuffix(".") else { throw bad("bad start or end") }
        guard !name.contains(".."), !name.contains("@{"), !name.contains("//"), name != "@" else { throw bad("forbidden sequence") }
        for c in name.unicodeScalars {
            if c.value < 0x20 || c.value == 0x7f || " ~^:?*[\\".unicodeScalars.contains(c) { throw bad("character '\(c)' is not allowed") }
        }
        for part in name.split(separator: "/", omittingEmptySubsequences: false) {
            if part.isEmpty || part.hasPrefix(".") || part.hasSuffix(".lock") { throw bad("component '\(part)' is not allowed") }
        }
    }

    func path(_ name: String) -> String { storeDirectory + "/" + name }

    /// Reads a ref (`refs/...` or `HEAD` when detached). nil if absent.
    public func read(_ name: String) throws -> ObjectID? {
        let p = path(name)
        guard let bytes = try? Sys.readFile(p, limit: 4096) else {
            if (try Sys.lstatIfExists(p)) == nil { return nil }
            throw MLStoreError(.io, "cannot read ref \(name)")
        }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \n\r\t")
        guard let id = ObjectID(hex: text) else {
            throw MLStoreError(.corrupt, "ref \(name) is malformed: \(text.prefix(80).debugDescription)", hint: "fix or delete \(p)")
        }
        return id
    }

    /// The state of HEAD.
    public func head() throws -> HeadState {
        let text = String(decoding: (try? Sys.readFile(path("HEAD"), limit: 4096)) ?? Array("ref: refs/heads/main\n".utf8), as: UTF8.self)
            .trimmingCharacters(in: " \n\r\t")
        if text.hasPrefix("ref: ") {
            let ref = String(text.dropFirst(5))
            guard ref.hasPrefix("refs/heads/") else { throw MLStoreError(.corrupt, "HEAD points at '\(ref)', not a branch") }
            return .branch(String(ref.dropFirst("refs/heads/".count)), try read(ref))
        }
        guard let id = ObjectID(hex: text) else { throw MLStoreError(.corrupt, "HEAD is malformed: \(text.prefix(80).debugDescription)") }
        return .detached(id)
    }

    /// Points HEAD at a branch (symbolic) or detaches it at a commit.
    public func setHead(_ state: HeadState, message: String, actor: Signature) throws {
        let old = try? head().commit
        let content: String
        let new: ObjectID?
        switch state {
        case .branch(let b, let id):
            try Self.validate("refs/heads/" + b)
            content = "ref: refs/heads/\(b)\n"
            new = id
        case .detached(let id):
            content = id.hex + "\n"
            new = id
        }
        let lock = try LockFile(path("HEAD"))
        try lock.write(Array(content.utf8))
        try lock.commit()
        if let new { try appendLog("HEAD", old: old ?? nil, new: new, actor: actor, message: message) }
    }

    /// Compare-and-swap update: takes `<ref>.lock`, checks the current value against `expected`,
    /// writes the new value (nil deletes), appends the reflog, and renames into place.
    /// - Throws: `.conflict` if the ref does not hold what was expected; `.locked` if another process holds the lock.
    public func update(_ name: String, to new: ObjectID?, expecting expected: RefExpectation, actor: Signature, message: String) throws {
        try Self.validate(name)
        let p = path(name)
        try Sys.mkdirs(Path.parent(p))
        let lock = try LockFile(p)
        let current = try read(name)
        switch expected {
        case .any: break
        case .absent:
            if let current {
                lock.rollback()
                throw MLStoreError(.conflict, "\(name) already exists (at \(current.short))", hint: "choose another name, or delete it first")
            }
        case .value(let v):
            if current != v {
                lock.rollback()
                throw MLStoreError(
                    .conflict, "\(name) moved: expected \(v.short), found \(current?.short ?? "nothing")",
                    hint: "someone else updated it meanwhile; look at the new value and run the command again")
            }
        }
        if let new {
            try lock.write(Array((new.hex + "\n").utf8))
            try lock.commit()
        } else {
            try Sys.unlink(p)
            lock.rollback()
        }
        try appendLog(name, old: current, new: new, actor: actor, message: message)
        // git also records branch moves in HEAD's log when HEAD is on that branch.
        if name.hasPrefix("refs/heads/"), case .branch(let b, _)? = try? head(), "refs/heads/" + b == name {
            try appendLog("HEAD", old: current, new: new, actor: actor, message: message)
        }
    }

    /// All refs under a prefix (e.g. `refs/heads/`), sorted by name.
    public func list(_ prefix: String = "refs/") -> [(name: String, id: ObjectID)] {
        var out: [(String, ObjectID)] = []
        func walk(_ rel: String) {
            guard let entries = try? Sys.listDirectory(path(rel)) else { return }
            for (n, t) in entries {
                let child = rel + "/" + n
                if t == .directory || (t == nil && (try? Sys.lstat(path(child)))?.isDirectory == true) {
                    walk(child)
                } else if !n.hasSuffix(".lock"), let id = try? read(child) {
                    out.append((child, id))
                }
            }
        }
        let base = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        if let st = try? Sys.lstatIfExists(path(base)), st.isDirectory { walk(base) }
        return out.sorted { $0.0 < $1.0 }
    }

    /// Ref files that cannot be read or do not hold an id (reported by fsck; gc refuses to run while any exist,
    /// since it cannot know what they protect).
    public func unreadable() -> [String] {
        var out: [String] = []
        func walk(_ rel: String) {
            guard let entries = try? Sys.listDirectory(path(rel)) else { return }
            for (n, _) in entries {
                let child = rel + "/" + n
                if (try? Sys.lstat(path(child)))?.isDirectory == true {
                    walk(child)
                } else if !n.hasSuffix(".lock"), (try? read(child)) == nil {
                    out.append(child)
                }
            }
        }
        walk("refs")
        return out.sorted()
    }

    /// `*.lock` files under refs/ (in-progress or interrupted updates).
    public func lockFiles() -> [String] {
        var out: [String] = []
        func walk(_ dir: String) {
            for (n, _) in (try? Sys.listDirectory(dir)) ?? [] {
                let p = dir + "/" + n
                if n.hasSuffix(".lock") { out.append(p) } else if (try? Sys.lstat(p))?.isDirectory == true { walk(p) }
            }
        }
        walk(path("refs"))
        return out.sorted()
    }

    // MARK: Reflog

    public struct LogEntry: Sendable, Codable {
        public var old: ObjectID?
        public var new: ObjectID?
        public var actor: Signature
        public var message: String
    }

    static let zero = String(repeating: "0", count: 64)

    func appendLog(_ name: String, old: ObjectID?, new: ObjectID?, actor: Signature, message: String) throws {
        let p = storeDirectory + "/logs/" + name
        try Sys.mkdirs(Path.parent(p))
        let line = "\(old?.hex ?? Self.zero) \(new?.hex ?? Self.zero) \(actor.encoded)\t\(message.replacingNewlines)\n"
        let fd = try Sys.open(p, O_WRONLY | O_CREAT | O_APPEND)
        defer { Sys.close(fd) }
        try Sys.write(fd, Array(line.utf8), path: p)
        try Sys.fsync(fd, path: p)
    }

    /// A ref's reflog, newest first.
    public func log(_ name: String) throws -> [LogEntry] {
        guard let bytes = try? Sys.readFile(storeDirectory + "/logs/" + name) else { return [] }
        var out: [LogEntry] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1)
            let head = parts[0].split(separator: " ", maxSplits: 2)
            guard head.count == 3, let sig = try? Signature(parsing: head[2]) else { continue }
            out.append(LogEntry(old: ObjectID(hex: head[0]).flatMap { $0.hex == Self.zero ? nil : $0 },
                                new: ObjectID(hex: head[1]).flatMap { $0.hex == Self.zero ? nil : $0 },
                                actor: sig, message: parts.count > 1 ? String(parts[1]) : ""))
        }
        return out.reversed()
    }
}

extension String {
    var replacingNewlines: String { split(whereSeparator: \.isNewline).joined(separator: " ") }
}
