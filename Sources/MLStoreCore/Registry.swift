#if canImport(Glibc)
    import Glibc
#endif
import MLStoreBasics

/// One row of a stage's history, as shown by `stage log`.
public struct StageEvent: Sendable, Codable {
    public var record: ObjectID
    /// Nanoseconds since 1970 when known (orders moves within one second).
    public var timeNanos: Int64?
    public var model: String
    public var stage: String
    public var action: StageRecord.Action
    public var from: ObjectID?
    public var to: ObjectID?
    /// The model versions (numbers) moved from and to, when the stage held registered versions.
    public var fromVersion: Int?
    public var toVersion: Int?
    public var path: String?
    public var actor: Signature
    public var reason: String
}

/// A `--require` condition on a commit's metrics or params, e.g. `metrics.acc>=0.9`.
public struct Requirement: Sendable, CustomStringConvertible {
    public enum Op: String, Sendable, CaseIterable { case ge = ">=", le = "<=", ne = "!=", eq = "==", gt = ">", lt = "<" }
    public var key: String
    public var op: Op
    public var value: Double
    public var description: String { "\(key)\(op.rawValue)\(JSONValue.format(value))" }

    /// Parses conditions joined by `,` or ` and `.
    public static func parse(_ text: String) throws -> [Requirement] {
        let parts = text.replacingOccurrences(of: " and ", with: ",").split(separator: ",").map { $0.trimmingCharacters(in: " ") }
        return try parts.map { p in
            for op in Op.allCases {
                if let r = p.range(of: op.rawValue) {
                    let key = p[..<r.lowerBound].trimmingCharacters(in: " ")
                    let v = p[r.upperBound...].trimmingCharacters(in: " ")
                    guard key.hasPrefix("metrics.") || key.hasPrefix("params."), key.count > 8 else {
                        throw MLStoreError(.usage, "--require '\(p)': the key must start with metrics. or params.", hint: "e.g. --require 'metrics.acc>=0.9'")
                    }
                    guard let d = Double(v) else { throw MLStoreError(.usage, "--require '\(p)': '\(v)' is not a number") }
                    return Requirement(key: key, op: op, value: d)
                }
            }
            throw MLStoreError(.usage, "--require '\(p)' has no comparison", hint: "use one of >= <= > < == !=, e.g. metrics.acc>=0.9")
        }
    }

    func holds(_ x: Double) -> Bool {
        switch op {
        case .ge: x >= value
        case .le: x <= value
        case .gt: x > value
        case .lt: x < value
        case .eq: x == value
        case .ne: x != value
        }
    }
}

extension String {
    func replacingOccurrences(of a: String, with b: String) -> String {
        guard !a.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.range(of: a) {
            out += rest[..<r.lowerBound] + b
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

extension Repository {
    /// The last value of a metric (a scalar, or the last point of a series).
    public func scalar(_ key: String, of commit: Commit) throws -> Double? {
        if key.hasPrefix("metrics."), let m = commit.metrics {
            let v = try json(m)[String(key.dropFirst(8))]
            if let n = v?.number { return n }
            if let last = v?.array?.last?["value"]?.number { return last }
        } else if key.hasPrefix("params."), let p = commit.params {
            return try json(p).flattened()[String(key.dropFirst(7))]?.number
        }
        return nil
    }

    /// Moves `<model>@<stage>` with a new stage record chained to the previous one, by compare-and-swap on
    /// `refs/stages/<model>/<stage>`. For a model with registered versions the record names the exact
    /// version (spec/models.md §Stages and versions); otherwise a commit (and optional path).
    /// - Parameter expectedRecord: with a value, the update fails unless the stage still holds that record.
    @discardableResult
    public func promote(model: String, stage: String, to revision: String, path: String? = nil, reason: String,
                        require: [Requirement] = [], expectedRecord: RefExpectation? = nil) throws -> (id: ObjectID, record: StageRecord) {
        try RegistryName.validateModel(model)
        try RegistryName.validateStage(stage)
        let (target, version) = try promotionTarget(model: model, revision: revision, path: path)
        let c = try commit(target)
        var failed: [String] = []
        for r in require {
            guard let x = try scalar(r.key, of: c) else {
                failed.append("\(r.key) is not recorded")
                continue
            }
            if !r.holds(x) { failed.append("\(r.key) = \(JSONValue.format(x)), required \(r)") }
        }
        let what = version.map { "\(model)@v\($0.version.version)" } ?? target.short
        if !failed.isEmpty {
            throw MLStoreError(.conflict, "refusing to promote \(what) to \(model)@\(stage): " + failed.joined(separator: "; "),
                               hint: "promote a commit that meets the requirement, or drop --require")
        }
        let ref = "refs/stages/\(model)/\(stage)"
        let old = try refs.read(ref)
        if let old, let current = try? stageRecord(old), current.target == target, current.version == version?.id,
            current.path == path, current.action != .clear
        {
            throw MLStoreError(.usage, "\(model)@\(stage) already points at \(what)", hint: "nothing to do")
        }
        let actor = try identity()
        let record = StageRecord(model: model, stage: stage, target: target, version: version?.id, path: path, previous: old,
                                 action: .promote, actor: actor, message: reason)
        return try publish(record, ref: ref, expected: expectedRecord ?? (old.map { .value($0) } ?? .absent), actor: actor)
    }

    /// What a promotion of `revision` records: for a model with registered versions, the version it names
    /// (`v2`, `<model>@v2`, `<model>@<stage>`, or a commit that is a registered version — the newest such);
    /// for a model without versions, or with an explicit `path`, the commit (the path checked against its tree).
    func promotionTarget(model: String, revision: String, path: String?) throws
        -> (commit: ObjectID, version: (id: ObjectID, version: ModelVersion)?)
    {
        let chain = try modelVersions(model)
        // A model without versions, or an explicit path: a commit stage (those files, never a version).
        guard let newest = chain.first, path == nil else {
            let target = try resolveCommit(revision)
            if let path {
                try Workspace.validateRelative(path)
                guard try lookup(path, in: try commit(target).tree) != nil else {
                    throw MLStoreError(.notFound, "'\(path)' is not in commit \(target.short)", hint: "list it with `mlstore ls-tree -r \(target.short)`")
                }
            }
            return (target, nil)
        }
        func version(_ n: Int) throws -> (id: ObjectID, version: ModelVersion) {
            guard let hit = chain.first(where: { $0.version.version == n }) else {
                throw MLStoreError(.notFound, "model \(model) has no version v\(n) (the newest is v\(newest.version.version))",
                                   hint: "list the versions with `mlstore model list \(model)`")
            }
            return hit
        }
        if let n = ModelNames.versionNumber(revision) {
            let hit = try version(n)
            return (hit.version.commit, hit)
        }
        if let at = revision.lastIndex(of: "@"), revision[..<at] == model, let spec = try? ModelSpec(parsing: revision) {
            let selection = try ModelSource.local(self).resolve(spec)
            guard let id = selection.versionID, let v = selection.version else {
                throw MLStoreError(.usage, "\(revision) holds a commit that is not a registered version of \(model)",
                                   hint: "register it first with `mlstore model register \(model) \(revision)`")
            }
            return (v.commit, (id, v))
        }
        let target = try resolveCommit(revision)
        guard let hit = chain.first(where: { $0.version.commit == target }) else {
            throw MLStoreError(.usage, "commit \(target.short) is not a registered version of model \(model) (v1…v\(newest.version.version))",
                               hint: "register it first with `mlstore model register \(model) \(revision)`, or promote a version: `mlstore promote \(model) v\(newest.version.version) --stage …`")
        }
        return (target, hit)
    }

    func publish(_ record: StageRecord, ref: String, expected: RefExpectation, actor: Signature) throws -> (id: ObjectID, record: StageRecord) {
        try Refs.validate(ref)
        var record = record
        if record.timeNanos == nil {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            // The clock now (after the previous record was read), so moves are ordered as published. A pinned
            // author date (MLSTORE_AUTHOR_DATE, tests) keeps its second; the sub-second part is then the real
            // clock in milliseconds modulo 10^9 (wraps every 11.6 days, not every second), so moves made across
            // a real second boundary still order as published.
            let pinned = abs(record.actor.time - Int64(ts.tv_sec)) > 1
            if pinned {
                let realMs = Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
                record.timeNanos = record.actor.time * 1_000_000_000 + realMs % 1_000_000_000
            } else {
                record.timeNanos = Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
            }
        }
        let id = try objects.write(kind: .stage, payload: record.encoded())
        let verb = record.action == .promote ? "promote" : record.action.rawValue
        try refs.update(ref, to: id, expecting: expected, actor: actor, message: "\(verb) \(record.target?.short ?? "-"): \(record.message.replacingNewlines)")
        return (id, record)
    }

    /// The stage's records, oldest first.
    public func stageChain(model: String, stage: String) throws -> [(id: ObjectID, record: StageRecord)] {
        var out: [(ObjectID, StageRecord)] = []
        var next = try refs.read("refs/stages/\(model)/\(stage)")
        var seen = Set<ObjectID>()
        while let id = next {
            guard seen.insert(id).inserted else { throw MLStoreError(.corrupt, "stage history of \(model)@\(stage) has a cycle at \(id.hex)") }
            let r = try stageRecord(id)
            out.append((id, r))
            next = r.previous
        }
        return out.reversed()
    }

    /// Moves the stage back to the target it had before the latest promotion still in effect
    /// (promotions push, rollbacks pop), with a new `rollback` record.
    @discardableResult
    public func rollback(model: String, stage: String, reason: String) throws -> (id: ObjectID, record: StageRecord) {
        try RegistryName.validateModel(model)
        try RegistryName.validateStage(stage)
        let chain = try stageChain(model: model, stage: stage)
        guard let head = chain.last else {
            throw MLStoreError(.notFound, "model \(model) has no history in stage \(stage)", hint: "see `mlstore stage list`")
        }
        var stack: [StageRecord] = []
        for (_, r) in chain {
            switch r.action {
            case .promote, .clear: stack.append(r)
            case .rollback: if !stack.isEmpty { stack.removeLast() }
            }
        }
        guard stack.count >= 2, let target = stack[stack.count - 2].target else {
            throw MLStoreError(.conflict, "nothing to roll back to: \(model)@\(stage) has no earlier target in effect", hint: "see `mlstore stage log \(model) --stage \(stage)`")
        }
        let actor = try identity()
        let back = stack[stack.count - 2]
        let record = StageRecord(model: model, stage: stage, target: target, version: back.version, path: back.path, previous: head.id,
                                 action: .rollback, actor: actor, message: reason)
        return try publish(record, ref: "refs/stages/\(model)/\(stage)", expected: .value(head.id), actor: actor)
    }

    /// Every model × stage with its current record.
    public func stages() throws -> [(model: String, stage: String, id: ObjectID, record: StageRecord)] {
        try refs.list("refs/stages/").compactMap { name, id in
            let parts = name.dropFirst("refs/stages/".count).split(separator: "/")
            guard parts.count == 2 else { return nil }
            return (String(parts[0]), String(parts[1]), id, try stageRecord(id))
        }
    }

    /// History of a model's stages (one stage or all), newest first.
    public func stageLog(model: String, stage: String? = nil) throws -> [StageEvent] {
        try RegistryName.validateModel(model)
        let stagesOfModel = try stage.map { s -> [String] in
            try RegistryName.validateStage(s)
            return [s]
        } ?? refs.list("refs/stages/\(model)/").map { String($0.name.split(separator: "/").last!) }
        var events: [StageEvent] = []
        let versions = try modelVersions(model)
        let source = ModelSource.local(self)
        for s in stagesOfModel {
            var previous: (target: ObjectID?, version: Int?) = (nil, nil)
            for (id, r) in try stageChain(model: model, stage: s) {
                let version = try source.versionHeld(by: r, recordID: id, chain: versions)?.version.version
                events.append(StageEvent(record: id, timeNanos: r.timeNanos ?? r.actor.time * 1_000_000_000, model: model, stage: s, action: r.action,
                                         from: previous.target, to: r.target, fromVersion: previous.version, toVersion: version, path: r.path,
                                         actor: r.actor, reason: r.message.trimmingCharacters(in: "\n")))
                previous = (r.target, version)
            }
        }
        if events.isEmpty {
            throw MLStoreError(.notFound, "model \(model) has no stage history\(stage.map { " in stage \($0)" } ?? "")", hint: "promote it with `mlstore promote \(model) <rev> --stage staging`")
        }
        // Newest first (nanosecond times), records of the same instant in reverse chain order.
        return events.enumerated().sorted { a, b in
            let ta = a.element.timeNanos ?? 0, tb = b.element.timeNanos ?? 0
            return ta != tb ? ta > tb : a.offset > b.offset
        }.map(\.element)
    }
}
