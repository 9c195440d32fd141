import MLStoreBasics

/// The derived query index (spec/tracking.md): commits, params, metrics (scalars and step series),
/// inputs/outputs, tags and stage records in SQLite at `.mlstore/tracking.db`. Objects stay the source
/// of truth: the index is brought up to date incrementally from the refs on every use and after every
/// writing command, and `reindex` (or deleting the file) rebuilds it from scratch.
public final class TrackingIndex: @unchecked Sendable {
    public static let schemaVersion = 1
    public let repo: Repository
    public let db: SQLiteDatabase
    public var path: String { repo.storeDirectory + "/tracking.db" }

    /// Opens (creating or rebuilding if damaged or of another schema) and syncs the index.
    public static func open(_ repo: Repository, sync: Bool = true) throws -> TrackingIndex {
        let path = repo.storeDirectory + "/tracking.db"
        func make() throws -> TrackingIndex {
            let index = try TrackingIndex(repo: repo, db: try SQLiteDatabase(path: path))
            try index.createSchema()
            return index
        }
        let index: TrackingIndex
        do {
            index = try make()
        } catch let e as MLStoreError where e.code == .corrupt || e.code == .unsupported {
            // Derived data: a damaged index or an old schema is rebuilt from the objects.
            for suffix in ["", "-wal", "-shm"] { _ = try? Sys.unlink(path + suffix) }
            index = try make()
        }
        if sync { try index.sync() }
        return index
    }

    init(repo: Repository, db: SQLiteDatabase) throws {
        self.repo = repo
        self.db = db
    }

    func createSchema() throws {
        try db.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
        try db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
        let v = try db.query("SELECT value FROM meta WHERE key='schema'").first?.first?.text
        if let v, v != String(Self.schemaVersion) {
            throw MLStoreError(.unsupported, "tracking index schema \(v)")
        }
        try db.execute("""
            CREATE TABLE IF NOT EXISTS commits(
              id TEXT PRIMARY KEY, tree TEXT, author TEXT, email TEXT, time INTEGER, ctime INTEGER,
              subject TEXT, message TEXT, command TEXT, stage_name TEXT, exit_status INTEGER);
            CREATE TABLE IF NOT EXISTS parents(commit_id TEXT, parent TEXT, n INTEGER);
            CREATE TABLE IF NOT EXISTS params(commit_id TEXT, key TEXT, num REAL, text TEXT);
            CREATE TABLE IF NOT EXISTS metrics(commit_id TEXT, key TEXT, value REAL, steps INTEGER);
            CREATE TABLE IF NOT EXISTS metric_steps(commit_id TEXT, key TEXT, step REAL, value REAL);
            CREATE TABLE IF NOT EXISTS artifacts(commit_id TEXT, role TEXT, path TEXT, object TEXT);
            CREATE TABLE IF NOT EXISTS tags(name TEXT PRIMARY KEY, commit_id TEXT);
            CREATE TABLE IF NOT EXISTS stages(model TEXT, stage TEXT, commit_id TEXT, record TEXT, PRIMARY KEY(model, stage));
            CREATE TABLE IF NOT EXISTS stage_events(record TEXT PRIMARY KEY, model TEXT, stage TEXT, action TEXT, target TEXT,
              previous TEXT, time INTEGER, actor TEXT, reason TEXT);
            CREATE TABLE IF NOT EXISTS refs_seen(ref TEXT PRIMARY KEY, value TEXT);
            CREATE INDEX IF NOT EXISTS params_key ON params(key, num);
            CREATE INDEX IF NOT EXISTS params_commit ON params(commit_id, key);
            CREATE INDEX IF NOT EXISTS metrics_key ON metrics(key, value);
            CREATE INDEX IF NOT EXISTS metrics_commit ON metrics(commit_id, key);
            CREATE INDEX IF NOT EXISTS steps_commit ON metric_steps(commit_id, key);
            CREATE INDEX IF NOT EXISTS artifacts_object ON artifacts(object, role);
            CREATE INDEX IF NOT EXISTS artifacts_commit ON artifacts(commit_id);
            CREATE INDEX IF NOT EXISTS parents_commit ON parents(commit_id);
            CREATE INDEX IF NOT EXISTS commits_time ON commits(time);
            CREATE INDEX IF NOT EXISTS stages_commit ON stages(commit_id);
            CREATE INDEX IF NOT EXISTS tags_commit ON tags(commit_id);
            """)
        try db.run("INSERT OR REPLACE INTO meta VALUES('schema', ?)", [.text(String(Self.schemaVersion))])
    }

    /// Drops everything and indexes all objects again.
    public func rebuild() throws {
        try db.transaction {
            for t in ["commits", "parents", "params", "metrics", "metric_steps", "artifacts", "tags", "stages", "stage_events", "refs_seen"] {
                try db.execute("DELETE FROM \(t)")
            }
        }
        try sync()
    }

    public func isIndexed(_ id: ObjectID) throws -> Bool {
        !(try db.query("SELECT 1 FROM commits WHERE id=?", [.text(id.hex)]).isEmpty)
    }

    /// Brings the index up to date with the refs: new commits (walking until known ones), tags, and stage
    /// histories. Cheap when nothing changed (one read of every ref).
    public func sync() throws {
        let refs = repo.refs.list()
        var head: [String: ObjectID] = [:]
        for (n, id) in refs { head[n] = id }
        if let h = try? repo.refs.head().commit { head["HEAD"] = h }
        let seen = Dictionary(try db.query("SELECT ref, value FROM refs_seen").compactMap { r -> (String, String)? in
            guard let a = r[0].text, let b = r[1].text else { return nil }
            return (a, b)
        }, uniquingKeysWith: { a, _ in a })
        let changed = head.filter { seen[$0.key] != $0.value.hex }
        let removed = seen.keys.filter { head[$0] == nil }
        if changed.isEmpty && removed.isEmpty { return }
        try db.transaction {
            let insertCommit = try db.prepare("INSERT OR IGNORE INTO commits VALUES(?,?,?,?,?,?,?,?,?,?,?)")
            let insertParent = try db.prepare("INSERT INTO parents VALUES(?,?,?)")
            let insertParam = try db.prepare("INSERT INTO params VALUES(?,?,?,?)")
            let insertMetric = try db.prepare("INSERT INTO metrics VALUES(?,?,?,?)")
            let insertStep = try db.prepare("INSERT INTO metric_steps VALUES(?,?,?,?)")
            let insertArtifact = try db.prepare("INSERT INTO artifacts VALUES(?,?,?,?)")
            var jsonCache: [ObjectID: JSONValue] = [:]
            func json(_ id: ObjectID) throws -> JSONValue {
                if let j = jsonCache[id] { return j }
                let j = try repo.json(id)
                jsonCache[id] = j
                return j
            }
            func index(from start: ObjectID) throws {
                var stack = [start]
                while let id = stack.popLast() {
                    guard try !isIndexed(id), let (kind, payload) = try? repo.objects.read(id), kind == .commit else { continue }
                    let c = try Commit(decoding: payload, id: id)
                    let hex = Value.text(id.hex)
                    try insertCommit.run([
                        hex, .text(c.tree.hex), .text(c.author.name), .text(c.author.email), .int(c.author.time), .int(c.committer.time),
                        .text(c.subject), .text(c.message), c.command.map { .text($0.joined(separator: " ")) } ?? .null,
                        c.extensionValue("stage").map { .text($0) } ?? .null, c.extensionValue("exit-status").flatMap { Int64($0) }.map { .int($0) } ?? .null,
                    ])
                    for (n, p) in c.parents.enumerated() {
                        try insertParent.run([hex, .text(p.hex), .int(Int64(n))])
                        stack.append(p)
                    }
                    if let pid = c.params, let p = try? json(pid) {
                        for (k, v) in p.flattened() {
                            try insertParam.run([hex, .text(k), v.number.map { .double($0) } ?? (v == .bool(true) ? .double(1) : v == .bool(false) ? .double(0) : .null), .text(v.display)])
                        }
                    }
                    if let mid = c.metrics, let m = try? json(mid).object {
                        for (k, v) in m {
                            if let n = v.number {
                                try insertMetric.run([hex, .text(k), .double(n), .int(0)])
                            } else if let series = v.array {
                                let points = series.compactMap { p -> (Double, Double)? in
                                    guard let s = p["step"]?.number, let x = p["value"]?.number else { return nil }
                                    return (s, x)
                                }
                                try insertMetric.run([hex, .text(k), points.last.map { .double($0.1) } ?? .null, .int(Int64(points.count))])
                                for (s, x) in points { try insertStep.run([hex, .text(k), .double(s), .double(x)]) }
                            }
                        }
                    }
                    for a in c.inputs { try insertArtifact.run([hex, .text("input"), .text(a.path), .text(a.id.hex)]) }
                    for a in c.outputs { try insertArtifact.run([hex, .text("output"), .text(a.path), .text(a.id.hex)]) }
                }
            }
            for (name, id) in changed.sorted(by: { $0.key < $1.key }) {
                if name.hasPrefix("refs/stages/") {
                    try indexStage(name, id)
                } else if let c = try? repo.peelToCommit(id, revision: name) {
                    try index(from: c)
                    if name.hasPrefix("refs/tags/") {
                        try db.run("INSERT OR REPLACE INTO tags VALUES(?,?)", [.text(String(name.dropFirst(10))), .text(c.hex)])
                    }
                }
                try db.run("INSERT OR REPLACE INTO refs_seen VALUES(?,?)", [.text(name), .text(id.hex)])
            }
            for name in removed {
                if name.hasPrefix("refs/tags/") { try db.run("DELETE FROM tags WHERE name=?", [.text(String(name.dropFirst(10)))]) }
                if name.hasPrefix("refs/stages/") {
                    let p = name.dropFirst(12).split(separator: "/")
                    if p.count == 2 { try db.run("DELETE FROM stages WHERE model=? AND stage=?", [.text(String(p[0])), .text(String(p[1]))]) }
                }
                try db.run("DELETE FROM refs_seen WHERE ref=?", [.text(name)])
            }
            // Targets of stage histories are commits too.
            for row in try db.query("SELECT DISTINCT target FROM stage_events WHERE target IS NOT NULL AND target NOT IN (SELECT id FROM commits)") {
                if let t = row[0].text, let id = ObjectID(hex: t) { try index(from: id) }
            }
        }
    }

    typealias Value = SQLiteDatabase.Value

    func indexStage(_ ref: String, _ head: ObjectID) throws {
        let p = ref.dropFirst(12).split(separator: "/")
        guard p.count == 2 else { return }
        let (model, stage) = (String(p[0]), String(p[1]))
        var next: ObjectID? = head
        var guardCount = 0
        while let r = next, guardCount < 1_000_000 {
            guardCount += 1
            if !(try db.query("SELECT 1 FROM stage_events WHERE record=?", [.text(r.hex)]).isEmpty) { break }
            guard repo.objects.contains(r) else { break }
            let rec = try repo.stageRecord(r)
            try db.run("INSERT OR IGNORE INTO stage_events VALUES(?,?,?,?,?,?,?,?,?)", [
                .text(r.hex), .text(model), .text(stage), .text(rec.action.rawValue), rec.target.map { .text($0.hex) } ?? .null,
                rec.previous.map { .text($0.hex) } ?? .null, .int(rec.timeNanos ?? rec.actor.time * 1_000_000_000), .text(rec.actor.name),
                .text(rec.message.trimmingCharacters(in: "\n")),
            ])
            next = rec.previous
        }
        let current = try repo.stageRecord(head)
        try db.run("INSERT OR REPLACE INTO stages VALUES(?,?,?,?)", [.text(model), .text(stage), current.target.map { .text($0.hex) } ?? .null, .text(head.hex)])
    }

    /// A canonical dump of every table (for comparing an incremental index with a rebuilt one).
    public func dump() throws -> [String: [[String]]] {
        var out: [String: [[String]]] = [:]
        for t in ["commits", "parents", "params", "metrics", "metric_steps", "artifacts", "tags", "stages", "stage_events"] {
            out[t] = try db.query("SELECT * FROM \(t)").map { $0.map(\.description) }.sorted { $0.joined(separator: "\u{1}") < $1.joined(separator: "\u{1}") }
        }
        return out
    }

    // MARK: Lineage through the index

    public func producers(of object: ObjectID) throws -> [ObjectID] {
        try db.query("SELECT a.commit_id FROM artifacts a JOIN commits c ON c.id=a.commit_id WHERE a.object=? AND a.role='output' ORDER BY c.ctime, c.id",
                     [.text(object.hex)]).compactMap { $0[0].text.flatMap { ObjectID(hex: $0) } }
    }

    public func consumers(of object: ObjectID) throws -> [ObjectID] {
        try db.query("SELECT a.commit_id FROM artifacts a JOIN commits c ON c.id=a.commit_id WHERE a.object=? AND a.role='input' ORDER BY c.ctime, c.id",
                     [.text(object.hex)]).compactMap { $0[0].text.flatMap { ObjectID(hex: $0) } }
    }

    public func artifacts(of commit: ObjectID, role: String) throws -> [Artifact] {
        try db.query("SELECT path, object FROM artifacts WHERE commit_id=? AND role=?", [.text(commit.hex), .text(role)]).compactMap { r in
            guard let p = r[0].text, let o = r[1].text.flatMap({ ObjectID(hex: $0) }) else { return nil }
            return Artifact(id: o, path: p)
        }
    }

    public func subject(of commit: ObjectID) throws -> (String, Int64) {
        let r = try db.query("SELECT subject, ctime FROM commits WHERE id=?", [.text(commit.hex)]).first
        return (r?[0].text ?? "", r?[1].int ?? 0)
    }
}
