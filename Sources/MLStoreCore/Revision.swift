import MLStoreBasics

/// Model and stage names (spec/refs.md §Registry names).
public enum RegistryName {
    public static let standardStages = ["staging", "production", "archived"]

    /// A model name: 1–100 characters of `a-z A-Z 0-9 . _ -`, starting with a letter or digit.
    public static func validateModel(_ name: String) throws {
        guard matches(name, max: 100, allowUpper: true), !name.contains(".."), !name.hasSuffix(".lock"), !name.hasSuffix(".") else {
            throw MLStoreError(.usage, "'\(name)' is not a valid model name", hint: "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit (no '..', not ending in '.' or '.lock')")
        }
    }

    /// A stage name: `staging`, `production`, `archived`, or a custom name of 1–40 characters of
    /// `a-z 0-9 _ -` starting with a letter.
    public static func validateStage(_ name: String) throws {
        guard matches(name, max: 40, allowUpper: false), name.first?.isLetter == true else {
            throw MLStoreError(.usage, "'\(name)' is not a valid stage name", hint: "use staging, production, archived, or a custom name of lower-case letters, digits, '_' or '-' starting with a letter")
        }
        guard !ModelNames.isReservedStageName(name) else {
            throw MLStoreError(.usage, "'\(name)' is not a valid stage name: v<N> names a model version (spec/models.md)", hint: "choose another stage name")
        }
    }

    static func matches(_ s: String, max: Int, allowUpper: Bool) -> Bool {
        guard !s.isEmpty, s.count <= max, let f = s.unicodeScalars.first, f.properties.isASCIIHexDigit || (f.value >= 0x61 && f.value <= 0x7a) || (allowUpper && f.value >= 0x41 && f.value <= 0x5a) else { return false }
        return s.unicodeScalars.allSatisfy { c in
            (c.value >= 0x61 && c.value <= 0x7a) || (c.value >= 0x30 && c.value <= 0x39) || c == "_" || c == "-"
                || (allowUpper && (c == "." || (c.value >= 0x41 && c.value <= 0x5a)))
        }
    }
}

extension Repository {
    /// Resolves a revision to an object id (spec/refs.md §Revisions):
    /// `HEAD`, a full ref name, a branch, tag or remote-tracking name, `<model>@<stage>`, a full id or
    /// unique prefix (≥ 4 hex), each optionally followed by `~N` / `^` / `^N` (first or N-th parent).
    public func resolve(_ revision: String) throws -> ObjectID {
        guard !revision.isEmpty else { throw MLStoreError(.usage, "empty revision") }
        // Split off ~N / ^N suffixes.
        var base = Substring(revision)
        var steps: [(Character, Int)] = []
        while let i = base.lastIndex(where: { $0 == "~" || $0 == "^" }) {
            let op = base[i]
            let numText = base[base.index(after: i)...]
            guard numText.isEmpty || numText.allSatisfy(\.isNumber), let n = numText.isEmpty ? 1 : Int(numText) else { break }
            steps.insert((op, n), at: 0)
            base = base[..<i]
        }
        var id = try resolveBase(String(base), whole: revision)
        for (op, n) in steps {
            id = try peelToCommit(id, revision: revision)
            if op == "~" {
                for _ in 0..<n {
                    guard let p = try commit(id).parents.first else {
                        throw MLStoreError(.notFound, "'\(revision)' goes past the first commit", hint: "use a smaller number")
                    }
                    id = p
                }
            } else if n > 0 {
                let parents = try commit(id).parents
                guard n <= parents.count else { throw MLStoreError(.notFound, "'\(revision)': the commit has \(parents.count) parent(s)") }
                id = parents[n - 1]
            }
        }
        return id
    }

    func resolveBase(_ name: String, whole: String) throws -> ObjectID {
        let refs = self.refs
        if name == "HEAD" || name == "@" {
            guard let id = try refs.head().commit else {
                throw MLStoreError(.notFound, "HEAD has no commits yet", hint: "make one with `mlstore commit -m <message>`")
            }
            return id
        }
        if let at = name.lastIndex(of: "@"), at != name.startIndex {
            let model = String(name[..<at])
            let stage = String(name[name.index(after: at)...])
            return try resolveStage(model: model, stage: stage, revision: whole)
        }
        if name.hasPrefix("refs/"), let id = try refs.read(name) { return id }
        for prefix in ["refs/heads/", "refs/tags/", "refs/remotes/"] {
            if (try? Refs.validate(prefix + name)) != nil, let id = try refs.read(prefix + name) { return id }
        }
        if Hex.isHex(name) {
            guard name.count >= 4 else {
                throw MLStoreError(.usage, "'\(name)' is too short to name an object", hint: "give at least 4 hex digits")
            }
            return try objects.resolve(prefix: name)
        }
        throw MLStoreError(.notFound, "unknown revision '\(whole)'", hint: "use a commit id (or prefix), a branch or tag name, HEAD~N, or <model>@<stage>")
    }

    /// `<model>@<stage>` → the commit the stage points at; `<model>@v<N>` → the commit of that model version.
    public func resolveStage(model: String, stage: String, revision: String) throws -> ObjectID {
        if ModelNames.isReservedStageName(stage) { return try modelVersion(named: model + "@" + stage).version.commit }
        guard let record = try currentStageRecord(model: model, stage: stage) else {
            throw MLStoreError(.notFound, "'\(revision)': model \(model) has nothing in stage \(stage)", hint: "see `mlstore stage list`")
        }
        guard let target = record.target else {
            throw MLStoreError(.notFound, "'\(revision)': stage \(stage) of \(model) was cleared")
        }
        return target
    }

    public func currentStageRecord(model: String, stage: String) throws -> StageRecord? {
        try RegistryName.validateModel(model)
        try RegistryName.validateStage(stage)
        guard let id = try refs.read("refs/stages/\(model)/\(stage)") else { return nil }
        return try stageRecord(id)
    }

    /// Follows annotated tags to the object they name, and requires a commit.
    public func peelToCommit(_ id: ObjectID, revision: String) throws -> ObjectID {
        var current = id
        for _ in 0..<16 {
            let (kind, _) = try objects.info(current)
            switch kind {
            case .commit: return current
            case .tag: current = try tagObject(current).object
            case .stage:
                guard let t = try stageRecord(current).target else { throw MLStoreError(.notFound, "'\(revision)' is a cleared stage") }
                current = t
            case .model: current = try modelVersion(current).commit
            default:
                throw MLStoreError(.usage, "'\(revision)' names a \(kind.rawValue), not a commit",
                                   hint: "give a commit, branch, tag or model@stage (checkout also takes a tree id)")
            }
        }
        throw MLStoreError(.corrupt, "'\(revision)': tag chain too long")
    }

    /// Resolves a revision that must name a commit.
    public func resolveCommit(_ revision: String) throws -> ObjectID {
        try peelToCommit(try resolve(revision), revision: revision)
    }

    /// Resolves a revision that names a tree, or a commit/tag whose tree is meant.
    public func resolveTree(_ revision: String) throws -> ObjectID {
        let id = try resolve(revision)
        let (kind, _) = try objects.info(id)
        switch kind {
        case .tree: return id
        case .commit, .tag, .stage, .model: return try commit(try peelToCommit(id, revision: revision)).tree
        default:
            throw MLStoreError(.usage, "'\(revision)' names a \(kind.rawValue), not a tree or commit", hint: "give a commit, a tree id, or a branch/tag name")
        }
    }

    /// The tree of HEAD's commit, nil before the first commit.
    public func headTree() throws -> ObjectID? {
        guard let c = try refs.head().commit else { return nil }
        return try commit(c).tree
    }
}
