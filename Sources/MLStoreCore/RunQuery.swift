import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// The `runs --where` language (spec/tracking.md):
///
///     expr       := term ('or' term)*
///     term       := factor ('and' factor)*
///     factor     := 'not' factor | '(' expr ')' | comparison
///     comparison := field op value
///     field      := params.<key> | metrics.<key> | tag | author | date | stage | message | command | id
///     op         := = | == | != | < | <= | > | >= | ~          (~ : contains, for text)
///     value      := number | 'text' | "text" | bare-word | YYYY-MM-DD[THH:MM[:SS]]
///
/// Errors name the offending token and its column.
public struct RunQuery: Sendable {
    struct Token: Equatable {
        enum Kind: Equatable { case word, string, number, op, lparen, rparen, end }
        var kind: Kind
        var text: String
        var column: Int
    }

    /// One top-level `and`-ed condition: SQL over `commits c` with its bindings, and — for a numeric
    /// comparison on a params/metrics key — that comparison, so a query sorted by the same key can walk
    /// the key's index instead of testing every run.
    public struct Conjunct: Sendable {
        public var sql: String
        public var bindings: [SQLiteDatabase.Value]
        public var key: String?
        public var op: String?
        public var number: Double?
    }
    public let conjuncts: [Conjunct]
    /// SQL condition over `commits c`, with its bindings.
    public var sql: String { conjuncts.map(\.sql).joined(separator: " AND ") }
    public var bindings: [SQLiteDatabase.Value] { conjuncts.flatMap(\.bindings) }
    /// The params./metrics. keys the expression mentions (shown as columns by default).
    public let keys: [String]

    static func syntaxError(_ text: String, _ t: Token, _ expected: String) -> MLStoreError {
        let found = t.kind == .end ? "the end of the expression" : "'\(t.text)'"
        let caret = String(repeating: " ", count: max(0, t.column - 1)) + "^"
        return MLStoreError(.usage, "syntax error in --where at column \(t.column): expected \(expected), found \(found)\n  \(text)\n  \(caret)",
                            hint: "example: --where 'metrics.acc > 0.9 and params.lr <= 0.01 and tag = v1' (spec/tracking.md)")
    }

    static func tokenize(_ text: String) throws -> [Token] {
        var out: [Token] = []
        let chars = Array(text)
        var i = 0
        func isWordChar(_ c: Character) -> Bool { c.isLetter || c.isNumber || "._-/@:+".contains(c) }
        while i < chars.count {
            let c = chars[i]
            let col = i + 1
            if c.isWhitespace { i += 1; continue }
            if c == "(" { out.append(Token(kind: .lparen, text: "(", column: col)); i += 1; continue }
            if c == ")" { out.append(Token(kind: .rparen, text: ")", column: col)); i += 1; continue }
            if "=!<>~".contains(c) {
                var op = String(c)
                if i + 1 < chars.count, chars[i + 1] == "=" { op.append("="); i += 1 }
                i += 1
                guard ["=", "==", "!=", "<", "<=", ">", ">=", "~"].contains(op) else {
                    throw syntaxError(text, Token(kind: .op, text: op, column: col), "a comparison operator (= != < <= > >= ~)")
                }
                out.append(Token(kind: .op, text: op, column: col))
                continue
            }
            if c == "'" || c == "\"" {
                var j = i + 1
                var s = ""
                while j < chars.count && chars[j] != c { s.append(chars[j]); j += 1 }
                guard j < chars.count else {
                    throw MLStoreError(.usage, "syntax error in --where at column \(col): unterminated string starting with \(c)\n  \(text)\n  \(String(repeating: " ", count: col - 1))^")
                }
                out.append(Token(kind: .string, text: s, column: col))
                i = j + 1
                continue
            }
            if isWordChar(c) {
                var j = i
                var s = ""
                while j < chars.count && isWordChar(chars[j]) { s.append(chars[j]); j += 1 }
                let isNumber = Double(s) != nil && !s.contains(":") && s.filter({ $0 == "-" }).count <= 1 && !(s.dropFirst().contains("-"))
                out.append(Token(kind: isNumber ? .number : .word, text: s, column: col))
                i = j
                continue
            }
            throw syntaxError(text, Token(kind: .word, text: String(c), column: col), "a field, value, operator or parenthesis")
        }
        out.append(Token(kind: .end, text: "", column: chars.count + 1))
        return out
    }

    public init(_ text: String) throws {
        var tokens = try Self.tokenize(text)[...]
        var bindings: [SQLiteDatabase.Value] = []
        var keys: [String] = []
        var lastComparison: (key: String, op: String, number: Double)?
        func peek() -> Token { tokens.first! }
        func next() -> Token { tokens.popFirst()! }
        func isKeyword(_ t: Token, _ k: String) -> Bool { t.kind == .word && t.text.lowercased() == k }

        func expr() throws -> String {
            var parts = [try term()]
            while isKeyword(peek(), "or") { _ = next(); parts.append(try term()) }
            return parts.count == 1 ? parts[0] : "(" + parts.joined(separator: " OR ") + ")"
        }
        func term() throws -> String {
            var parts = [try factor()]
            while isKeyword(peek(), "and") { _ = next(); parts.append(try factor()) }
            return parts.count == 1 ? parts[0] : "(" + parts.joined(separator: " AND ") + ")"
        }
        func factor() throws -> String {
            let t = peek()
            if isKeyword(t, "not") { _ = next(); return "NOT (" + (try factor()) + ")" }
            if t.kind == .lparen {
                _ = next()
                let e = try expr()
                guard peek().kind == .rparen else { throw Self.syntaxError(text, peek(), "')'") }
                _ = next()
                return "(" + e + ")"
            }
            return try comparison()
        }
        func comparison() throws -> String {
            let field = next()
            guard field.kind == .word, !["and", "or", "not"].contains(field.text.lowercased()) else {
                throw Self.syntaxError(text, field, "a field (params.<key>, metrics.<key>, tag, author, date, stage, message, command, id)")
            }
            let opTok = next()
            guard opTok.kind == .op else { throw Self.syntaxError(text, opTok, "a comparison operator after '\(field.text)'") }
            let op = opTok.text == "==" ? "=" : opTok.text
            let value = next()
            guard value.kind == .number || value.kind == .string || (value.kind == .word && !["and", "or", "not"].contains(value.text.lowercased())) else {
                throw Self.syntaxError(text, value, "a value after '\(opTok.text)'")
            }
            let f = field.text
            let number = value.kind == .number ? Double(value.text) : nil
            func sqlOp() -> String { op == "~" ? "LIKE" : op }
            func textBinding() -> SQLiteDatabase.Value { .text(op == "~" ? "%\(value.text)%" : value.text) }
            switch f.lowercased() {
            case _ where f.hasPrefix("params.") && f.count > 7:
                keys.append(f)
                bindings.append(.text(String(f.dropFirst(7))))
                if let number, op != "~" {
                    bindings.append(.double(number))
                    lastComparison = (f, op, number)
                    return "c.id IN (SELECT commit_id FROM params WHERE key=? AND num \(op) ?)"
                }
                bindings.append(textBinding())
                return "c.id IN (SELECT commit_id FROM params WHERE key=? AND text \(sqlOp()) ?)"
            case _ where f.hasPrefix("metrics.") && f.count > 8:
                keys.append(f)
                guard let number, op != "~" else {
                    throw Self.syntaxError(text, value, "a number (metrics are numbers) after '\(f) \(opTok.text)'")
                }
                bindings += [.text(String(f.dropFirst(8))), .double(number)]
                lastComparison = (f, op, number)
                return "c.id IN (SELECT commit_id FROM metrics WHERE key=? AND value \(op) ?)"
            case "tag":
                guard ["=", "!=", "~"].contains(op) else { throw Self.syntaxError(text, opTok, "= != or ~ for tag") }
                bindings.append(textBinding())
                let e = "(SELECT commit_id FROM tags WHERE name \(op == "~" ? "LIKE" : "=") ?)"
                return op == "!=" ? "c.id NOT IN " + e : "c.id IN " + e
            case "stage":
                guard ["=", "!="].contains(op) else { throw Self.syntaxError(text, opTok, "= or != for stage") }
                var cond = "s.stage = ?"
                if let at = value.text.firstIndex(of: "@") {
                    bindings += [.text(String(value.text[value.text.index(after: at)...])), .text(String(value.text[..<at]))]
                    cond += " AND s.model = ?"
                } else {
                    bindings.append(.text(value.text))
                }
                let e = "(SELECT commit_id FROM stages s WHERE s.commit_id IS NOT NULL AND \(cond))"
                return op == "!=" ? "c.id NOT IN " + e : "c.id IN " + e
            case "author":
                bindings += [textBinding(), textBinding()]
                return "(c.author \(sqlOp()) ? OR c.email \(sqlOp()) ?)"
            case "message", "subject":
                bindings.append(textBinding())
                return "c.message \(sqlOp()) ?"
            case "command":
                bindings.append(textBinding())
                return "c.command \(sqlOp()) ?"
            case "id", "commit":
                guard op == "=" || op == "!=" else { throw Self.syntaxError(text, opTok, "= or != for id") }
                bindings.append(.text(value.text.lowercased() + "%"))
                return "c.id \(op == "=" ? "LIKE" : "NOT LIKE") ?"
            case "date", "time":
                guard op != "~" else { throw Self.syntaxError(text, opTok, "a comparison (= != < <= > >=) for date") }
                guard let t = Self.parseDate(value.text) else { throw Self.syntaxError(text, value, "a date like 2026-01-31 or 2026-01-31T12:00") }
                bindings.append(.int(t))
                return "c.time \(op) ?"
            default:
                throw Self.syntaxError(text, field, "a field (params.<key>, metrics.<key>, tag, author, date, stage, message, command, id)")
            }
        }
        // Top level: conjuncts of factors, each with its own bindings.
        var conjuncts: [Conjunct] = []
        repeat {
            if !conjuncts.isEmpty { _ = next() }
            bindings = []
            lastComparison = nil
            let start = tokens.count
            var f = try factor()
            let simple = start - tokens.count == 3 ? lastComparison : nil
            // `a or b` at the top level belongs to one conjunct.
            while isKeyword(peek(), "or") {
                _ = next()
                f = "(" + f + " OR " + (try term()) + ")"
            }
            let isSimple = simple != nil && !isKeyword(peek(), "or") && f.hasPrefix("c.id IN (SELECT commit_id FROM")
            conjuncts.append(Conjunct(sql: f, bindings: bindings, key: isSimple ? simple?.key : nil, op: isSimple ? simple?.op : nil,
                                      number: isSimple ? simple?.number : nil))
        } while isKeyword(peek(), "and")
        guard peek().kind == .end else { throw Self.syntaxError(text, peek(), "'and', 'or' or the end of the expression") }
        self.conjuncts = conjuncts
        self.keys = keys
    }

    /// `YYYY-MM-DD[THH:MM[:SS]]` (UTC) or unix seconds.
    static func parseDate(_ s: String) -> Int64? {
        if let n = Int64(s) { return n }
        let parts = s.split(whereSeparator: { $0 == "-" || $0 == "T" || $0 == ":" }).compactMap { Int32($0) }
        guard parts.count >= 3, parts.count <= 6 else { return nil }
        var t = tm()
        t.tm_year = parts[0] - 1900
        t.tm_mon = parts[1] - 1
        t.tm_mday = parts[2]
        t.tm_hour = parts.count > 3 ? parts[3] : 0
        t.tm_min = parts.count > 4 ? parts[4] : 0
        t.tm_sec = parts.count > 5 ? parts[5] : 0
        return Int64(timegm(&t))
    }
}

/// One row of `runs`.
public struct RunRow: Sendable, Codable {
    public var id: ObjectID
    public var time: Int64
    public var author: String
    public var subject: String
    public var params: [String: JSONValue]
    public var metrics: [String: JSONValue]
    public var tags: [String]
    public var stages: [String]
}

extension TrackingIndex {
    /// Runs matching `where`, sorted by `sort` (`[-]key`, e.g. `-metrics.acc`; default newest first).
    public func runs(where expr: String?, sort: String?, limit: Int?, columns: [String]?) throws -> (rows: [RunRow], columns: [String]) {
        let q = try expr.map { try RunQuery($0) }
        var sql = "SELECT c.id FROM commits c"
        var bindings: [SQLiteDatabase.Value] = []
        var order = "c.ctime DESC, c.id"
        var sortKey: String?
        if let sort {
            let desc = sort.hasPrefix("-")
            let key = desc ? String(sort.dropFirst()) : (sort.hasPrefix("+") ? String(sort.dropFirst()) : sort)
            let dir = desc ? "DESC" : "ASC"
            if key.hasPrefix("metrics.") && key.count > 8 {
                sql = "SELECT c.id FROM commits c LEFT JOIN metrics sk ON sk.commit_id=c.id AND sk.key=?"
                bindings.append(.text(String(key.dropFirst(8))))
                order = "sk.value IS NULL, sk.value \(dir), c.id"
                sortKey = key
            } else if key.hasPrefix("params.") && key.count > 7 {
                sql = "SELECT c.id FROM commits c LEFT JOIN params sk ON sk.commit_id=c.id AND sk.key=?"
                bindings.append(.text(String(key.dropFirst(7))))
                order = "sk.num IS NULL AND sk.text IS NULL, sk.num \(dir), sk.text \(dir), c.id"
                sortKey = key
            } else if ["date", "time"].contains(key) {
                order = "c.ctime \(dir), c.id"
            } else if key == "author" {
                order = "c.author \(dir), c.id"
            } else if key == "subject" || key == "message" {
                order = "c.subject \(dir), c.id"
            } else {
                throw MLStoreError(.usage, "cannot sort by '\(key)'", hint: "sort by metrics.<key>, params.<key>, date, author or subject; prefix '-' for descending")
            }
        }
        var conjuncts = q?.conjuncts ?? []
        // Sorted by a key the filter also compares numerically: walk that key's index in order and stop at
        // the limit, instead of testing and sorting every run.
        if let sortKey, let i = conjuncts.firstIndex(where: { $0.key == sortKey }), let op = conjuncts[i].op, let number = conjuncts[i].number {
            let isMetric = sortKey.hasPrefix("metrics.")
            let table = isMetric ? "metrics" : "params"
            let column = isMetric ? "value" : "num"
            let desc = sort?.hasPrefix("-") == true
            sql = "SELECT c.id FROM \(table) sk JOIN commits c ON c.id=sk.commit_id"
            bindings = [.text(String(sortKey.dropFirst(isMetric ? 8 : 7)))]
            conjuncts[i] = .init(sql: "sk.\(column) \(op) ?", bindings: [.double(number)], key: nil, op: nil, number: nil)
            order = "sk.\(column) \(desc ? "DESC" : "ASC")"
            sql += " WHERE sk.key=?"
            for c in conjuncts {
                sql += " AND " + c.sql
                bindings += c.bindings
            }
        } else if !conjuncts.isEmpty {
            sql += " WHERE " + conjuncts.map(\.sql).joined(separator: " AND ")
            bindings += conjuncts.flatMap(\.bindings)
        }
        sql += " ORDER BY " + order
        if let limit { sql += " LIMIT \(limit)" }
        let ids = try db.query(sql, bindings).compactMap { $0[0].text.flatMap { ObjectID(hex: $0) } }
        var cols = columns ?? []
        if columns == nil {
            for k in (q?.keys ?? []) + (sortKey.map { [$0] } ?? []) where !cols.contains(k) { cols.append(k) }
        }
        let rows = try ids.map { try row($0) }
        return (rows, cols)
    }

    public func row(_ id: ObjectID) throws -> RunRow {
        let hex = SQLiteDatabase.Value.text(id.hex)
        let c = try db.query("SELECT ctime, author, subject FROM commits WHERE id=?", [hex]).first ?? []
        var params: [String: JSONValue] = [:]
        for r in try db.query("SELECT key, num, text FROM params WHERE commit_id=?", [hex]) {
            guard let k = r[0].text else { continue }
            params[k] = r[1].double.map { .number($0) } ?? .string(r[2].text ?? "")
        }
        var metrics: [String: JSONValue] = [:]
        for r in try db.query("SELECT key, value FROM metrics WHERE commit_id=?", [hex]) {
            guard let k = r[0].text else { continue }
            metrics[k] = r[1].double.map { .number($0) } ?? .null
        }
        let tags = try db.query("SELECT name FROM tags WHERE commit_id=? ORDER BY name", [hex]).compactMap { $0[0].text }
        let stages = try db.query("SELECT model || '@' || stage FROM stages WHERE commit_id=? ORDER BY 1", [hex]).compactMap { $0[0].text }
        return RunRow(id: id, time: c.first?.int ?? 0, author: c.count > 1 ? c[1].text ?? "" : "", subject: c.count > 2 ? c[2].text ?? "" : "",
                      params: params, metrics: metrics, tags: tags, stages: stages)
    }

    /// A metric's step series (or its scalar as one point).
    public func series(_ id: ObjectID, key: String) throws -> [(step: Double, value: Double)] {
        let steps = try db.query("SELECT step, value FROM metric_steps WHERE commit_id=? AND key=? ORDER BY step", [.text(id.hex), .text(key)])
            .compactMap { r -> (Double, Double)? in
                guard let s = r[0].double, let v = r[1].double else { return nil }
                return (s, v)
            }
        if !steps.isEmpty { return steps }
        if let v = try db.query("SELECT value FROM metrics WHERE commit_id=? AND key=?", [.text(id.hex), .text(key)]).first?.first?.double {
            return [(0, v)]
        }
        return []
    }

    public func metricKeys(_ id: ObjectID) throws -> [String] {
        try db.query("SELECT key FROM metrics WHERE commit_id=? ORDER BY key", [.text(id.hex)]).compactMap { $0[0].text }
    }

    /// Number of indexed commits.
    public func count() throws -> Int { Int(try db.query("SELECT count(*) FROM commits").first?.first?.int ?? 0) }
}
