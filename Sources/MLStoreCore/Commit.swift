import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// Who did something and when: `Name <email> <unix seconds> <+hhmm>`, as in git.
public struct Signature: Sendable, Equatable, Codable {
    public var name: String
    public var email: String
    public var time: Int64
    /// Offset from UTC in minutes.
    public var offsetMinutes: Int

    public init(name: String, email: String, time: Int64, offsetMinutes: Int = 0) {
        self.name = name
        self.email = email
        self.time = time
        self.offsetMinutes = offsetMinutes
    }

    /// Why a name or email cannot appear in a signature (nil when it can): `<`, `>` and control characters
    /// (line breaks among them) would make the record unreadable; so would an empty value or, for an email,
    /// a space.
    public static func problem(with value: String, field: String) -> String? {
        if value.isEmpty { return "is empty" }
        if value.utf8.count > 1024 { return "is longer than 1024 bytes" }
        if value.contains("<") || value.contains(">") { return "contains '<' or '>'" }
        if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) { return "contains a line break or another control character" }
        if value.first == " " || value.last == " " { return "starts or ends with a space" }
        if field == "email" && value.contains(" ") { return "contains a space" }
        return nil
    }

    /// A value for an error message: control characters shown as escapes, so it prints on one line.
    public static func printable(_ value: String) -> String {
        var out = ""
        for c in value.unicodeScalars {
            if c.value < 0x20 || c.value == 0x7f { out += c == "\n" ? "\\n" : "\\x" + String(c.value, radix: 16) } else { out.unicodeScalars.append(c) }
        }
        return out
    }

    public var encoded: String {
        let sign = offsetMinutes < 0 ? "-" : "+"
        let m = abs(offsetMinutes)
        return "\(name) <\(email)> \(time) \(sign)\(String(format: "%02d%02d", m / 60, m % 60))"
    }

    public init(parsing text: Substring) throws {
        guard let lt = text.firstIndex(of: "<"), let gt = text[lt...].firstIndex(of: ">") else {
            throw MLStoreError(.corrupt, "malformed signature '\(text)'")
        }
        name = String(text[..<lt]).trimmingCharacters(in: " ")
        email = String(text[text.index(after: lt)..<gt])
        let rest = text[text.index(after: gt)...].split(separator: " ")
        guard rest.count == 2, let t = Int64(rest[0]), rest[1].count == 5,
            let hh = Int(rest[1].dropFirst().prefix(2)), let mm = Int(rest[1].suffix(2))
        else {
            throw MLStoreError(.corrupt, "malformed signature time in '\(text)'")
        }
        time = t
        offsetMinutes = (rest[1].hasPrefix("-") ? -1 : 1) * (hh * 60 + mm)
    }

    /// ISO-8601 local time of the signature.
    public var isoDate: String {
        var t = time_t(time + Int64(offsetMinutes) * 60)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        let sign = offsetMinutes < 0 ? "-" : "+"
        let m = abs(offsetMinutes)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d %@%02d%02d", tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday,
                      tmv.tm_hour, tmv.tm_min, tmv.tm_sec, sign, m / 60, m % 60)
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String { Substring(self).trimmingCharacters(in: set) }
}

/// A path-qualified object reference (an input or output of a run).
public struct Artifact: Sendable, Equatable, Codable, Hashable {
    public var id: ObjectID
    public var path: String
    public init(id: ObjectID, path: String) {
        self.id = id
        self.path = path
    }
}

/// The code version of a run: a tree of the code files, the git commit (if any), and a patch when dirty.
public struct CodeVersion: Sendable, Equatable {
    public var tree: ObjectID
    public var gitCommit: String?
    public var dirtyPatch: ObjectID?
    public init(tree: ObjectID, gitCommit: String?, dirtyPatch: ObjectID?) {
        self.tree = tree
        self.gitCommit = gitCommit
        self.dirtyPatch = dirtyPatch
    }
}

/// A lineage commit (spec/lineage.md §Commit): the snapshot and everything that produced it.
public struct Commit: Sendable, Equatable {
    public var tree: ObjectID
    public var parents: [ObjectID] = []
    public var inputs: [Artifact] = []
    public var outputs: [Artifact] = []
    public var params: ObjectID?
    public var metrics: ObjectID?
    public var env: ObjectID?
    public var code: CodeVersion?
    public var command: [String]?
    public var author: Signature
    public var committer: Signature
    /// `x-<key> <value>` extension headers, kept sorted; unknown ones are preserved.
    public var extensions: [(key: String, value: String)] = []
    public var message: String

    public init(tree: ObjectID, author: Signature, committer: Signature, message: String) {
        self.tree = tree
        self.author = author
        self.committer = committer
        self.message = message
    }

    public static func == (a: Commit, b: Commit) -> Bool { a.encoded() == b.encoded() }

    public func encoded() -> [UInt8] {
        var s = "tree \(tree.hex)\n"
        for p in parents { s += "parent \(p.hex)\n" }
        for i in inputs { s += "input \(i.id.hex) \(i.path)\n" }
        for o in outputs { s += "output \(o.id.hex) \(o.path)\n" }
        if let params { s += "params \(params.hex)\n" }
        if let metrics { s += "metrics \(metrics.hex)\n" }
        if let env { s += "env \(env.hex)\n" }
        if let code {
            s += "code \(code.tree.hex) \(code.gitCommit ?? "-")"
            if let d = code.dirtyPatch { s += " dirty \(d.hex)" }
            s += "\n"
        }
        if let command { s += "command \(JSONValue.array(command.map { .string($0) }).canonical)\n" }
        s += "author \(author.encoded)\n"
        s += "committer \(committer.encoded)\n"
        for e in extensions.sorted(by: { $0.key < $1.key }) { s += "x-\(e.key) \(e.value)\n" }
        s += "\n" + message
        return Array(s.utf8)
    }

    public var id: ObjectID { ObjectID.hash(kind: .commit, payload: encoded()) }

    /// The first line of the message.
    public var subject: String { String(message.split(separator: "\n", omittingEmptySubsequences: false).first ?? "") }

    public init(decoding payload: [UInt8], id: ObjectID? = nil) throws {
        let what = "commit \(id?.hex ?? "")"
        func bad(_ d: String) -> MLStoreError { MLStoreError(.corrupt, "\(what) is malformed: \(d)") }
        guard let text = String(validating: payload, as: UTF8.self) else { throw bad("not UTF-8") }
        let (headers, message) = try splitHeaders(text, what: what)
        var tree: ObjectID?
        var author: Signature?
        var committer: Signature?
        var c = Commit(tree: ObjectID(bytes: [UInt8](repeating: 0, count: 32)), author: Signature(name: "", email: "", time: 0), committer: Signature(name: "", email: "", time: 0), message: message)
        func oid(_ v: Substring) throws -> ObjectID {
            guard let i = ObjectID(hex: v) else { throw bad("bad id '\(v)'") }
            return i
        }
        func artifact(_ v: Substring) throws -> Artifact {
            guard let sp = v.firstIndex(of: " ") else { throw bad("artifact without path") }
            let path = String(v[v.index(after: sp)...])
            guard !path.isEmpty, !path.contains("\n") else { throw bad("bad artifact path") }
            return Artifact(id: try oid(v[..<sp]), path: path)
        }
        for (key, value) in headers {
            switch key {
            case "tree": tree = try oid(value)
            case "parent": c.parents.append(try oid(value))
            case "input": c.inputs.append(try artifact(value))
            case "output": c.outputs.append(try artifact(value))
            case "params": c.params = try oid(value)
            case "metrics": c.metrics = try oid(value)
            case "env": c.env = try oid(value)
            case "code":
                let f = value.split(separator: " ")
                guard f.count == 2 || (f.count == 4 && f[2] == "dirty") else { throw bad("bad code line") }
                c.code = CodeVersion(tree: try oid(f[0]), gitCommit: f[1] == "-" ? nil : String(f[1]), dirtyPatch: f.count == 4 ? try oid(f[3]) : nil)
            case "command":
                guard let arr = try? JSONValue.parse(json: Array(value.utf8), what: "command").array else { throw bad("bad command line") }
                c.command = try arr.map {
                    guard let s = $0.string else { throw bad("command argument is not a string") }
                    return s
                }
            case "author": author = try Signature(parsing: value)
            case "committer": committer = try Signature(parsing: value)
            default:
                if key.hasPrefix("x-") {
                    c.extensions.append((String(key.dropFirst(2)), String(value)))
                } else {
                    throw bad("unknown header '\(key)'")
                }
            }
        }
        guard let tree, let author, let committer else { throw bad("missing tree, author or committer") }
        c.tree = tree
        c.author = author
        c.committer = committer
        self = c
    }
}

/// Splits `key value` header lines from the message after the first blank line.
func splitHeaders(_ text: String, what: String) throws -> ([(String, Substring)], String) {
    var headers: [(String, Substring)] = []
    var rest = Substring(text)
    while true {
        guard let nl = rest.firstIndex(of: "\n") else {
            throw MLStoreError(.corrupt, "\(what) is malformed: no blank line before the message")
        }
        let line = rest[..<nl]
        rest = rest[rest.index(after: nl)...]
        if line.isEmpty { break }
        guard let sp = line.firstIndex(of: " ") else {
            throw MLStoreError(.corrupt, "\(what) is malformed: header line '\(line)' has no value")
        }
        headers.append((String(line[..<sp]), line[line.index(after: sp)...]))
    }
    return (headers, String(rest))
}

/// An annotated tag (spec/lineage.md §Tag), as in git.
public struct TagObject: Sendable, Equatable {
    public var object: ObjectID
    public var kind: ObjectKind
    public var name: String
    public var tagger: Signature
    public var message: String

    public init(object: ObjectID, kind: ObjectKind, name: String, tagger: Signature, message: String) {
        self.object = object
        self.kind = kind
        self.name = name
        self.tagger = tagger
        self.message = message
    }

    public func encoded() -> [UInt8] {
        Array("object \(object.hex)\ntype \(kind.rawValue)\ntag \(name)\ntagger \(tagger.encoded)\n\n\(message)".utf8)
    }

    public init(decoding payload: [UInt8], id: ObjectID? = nil) throws {
        let what = "tag \(id?.hex ?? "")"
        guard let text = String(validating: payload, as: UTF8.self) else { throw MLStoreError(.corrupt, "\(what) is not UTF-8") }
        let (headers, message) = try splitHeaders(text, what: what)
        let h = Dictionary(headers, uniquingKeysWith: { a, _ in a })
        guard let o = h["object"].flatMap({ ObjectID(hex: $0) }), let t = h["type"].flatMap({ ObjectKind(rawValue: String($0)) }),
            let n = h["tag"], let tg = h["tagger"]
        else { throw MLStoreError(.corrupt, "\(what) is malformed: missing object, type, tag or tagger") }
        self.init(object: o, kind: t, name: String(n), tagger: try Signature(parsing: tg), message: message)
    }
}

/// One stage move of a model (spec/lineage.md §Stage record). The chain of `previous` links is the
/// audit history: immutable, replicated with the objects, never appended to in place.
public struct StageRecord: Sendable, Equatable {
    public enum Action: String, Sendable, Codable { case promote, rollback, clear }

    public var model: String
    public var stage: String
    /// The commit the stage points at after this move (nil for `clear`).
    public var target: ObjectID?
    /// The registered model version the stage holds (`version <hex>`); its commit is `target`. Absent in
    /// records of models without versions, and in records written before versions were recorded.
    public var version: ObjectID?
    /// Artifact path inside the commit's tree, if the model is one path of it.
    public var path: String?
    public var previous: ObjectID?
    public var action: Action
    public var actor: Signature
    /// Sub-second time of the move (`x-time-ns`), which orders moves made within one second.
    public var timeNanos: Int64?
    public var message: String

    public init(model: String, stage: String, target: ObjectID?, version: ObjectID? = nil, path: String?, previous: ObjectID?,
                action: Action, actor: Signature, message: String, timeNanos: Int64? = nil) {
        self.timeNanos = timeNanos
        self.version = version
        self.model = model
        self.stage = stage
        self.target = target
        self.path = path
        self.previous = previous
        self.action = action
        self.actor = actor
        self.message = message
    }

    public var refName: String { "refs/stages/\(model)/\(stage)" }

    public func encoded() -> [UInt8] {
        var s = "ref \(refName)\n"
        if let target { s += "target \(target.hex)\n" }
        if let version { s += "version \(version.hex)\n" }
        if let path { s += "path \(path)\n" }
        if let previous { s += "previous \(previous.hex)\n" }
        s += "action \(action.rawValue)\nactor \(actor.encoded)\n"
        if let timeNanos { s += "x-time-ns \(timeNanos)\n" }
        s += "\n\(message)"
        return Array(s.utf8)
    }

    public init(decoding payload: [UInt8], id: ObjectID? = nil) throws {
        let what = "stage record \(id?.hex ?? "")"
        func bad(_ d: String) -> MLStoreError { MLStoreError(.corrupt, "\(what) is malformed: \(d)") }
        guard let text = String(validating: payload, as: UTF8.self) else { throw bad("not UTF-8") }
        let (headers, message) = try splitHeaders(text, what: what)
        let h = Dictionary(headers, uniquingKeysWith: { a, _ in a })
        guard let ref = h["ref"], ref.hasPrefix("refs/stages/") else { throw bad("missing ref") }
        let parts = ref.dropFirst("refs/stages/".count).split(separator: "/")
        guard parts.count == 2 else { throw bad("bad ref '\(ref)'") }
        guard let a = h["action"].flatMap({ Action(rawValue: String($0)) }) else { throw bad("bad action") }
        guard let actor = h["actor"] else { throw bad("missing actor") }
        let target = try h["target"].map { v -> ObjectID in
            guard let i = ObjectID(hex: v) else { throw bad("bad target") }
            return i
        }
        let previous = try h["previous"].map { v -> ObjectID in
            guard let i = ObjectID(hex: v) else { throw bad("bad previous") }
            return i
        }
        let version = try h["version"].map { v -> ObjectID in
            guard let i = ObjectID(hex: v) else { throw bad("bad version") }
            return i
        }
        guard a == .clear || target != nil else { throw bad("a \(a.rawValue) record needs a target") }
        guard version == nil || target != nil else { throw bad("a version without a target") }
        self.init(model: String(parts[0]), stage: String(parts[1]), target: target, version: version, path: h["path"].map(String.init),
                  previous: previous, action: a, actor: try Signature(parsing: actor), message: message,
                  timeNanos: h["x-time-ns"].flatMap { Int64($0) })
    }
}

extension Repository {
    public func commit(_ id: ObjectID) throws -> Commit {
        try Commit(decoding: try objects.read(id, as: .commit), id: id)
    }

    public func stageRecord(_ id: ObjectID) throws -> StageRecord {
        try StageRecord(decoding: try objects.read(id, as: .stage), id: id)
    }

    public func tagObject(_ id: ObjectID) throws -> TagObject {
        try TagObject(decoding: try objects.read(id, as: .tag), id: id)
    }

    /// Reads a JSON blob (params, metrics, env).
    public func json(_ id: ObjectID) throws -> JSONValue {
        try JSONValue.parse(json: try objects.read(id, as: .blob), what: "object \(id.short)")
    }
}
