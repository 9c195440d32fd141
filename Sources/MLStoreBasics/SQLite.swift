internal import CMLStoreSQLite

/// A SQLite database (system libsqlite3). One owner per connection; statements are prepared per call.
///
/// ```swift
/// let db = try SQLiteDatabase(path: "/tmp/x.db")
/// try db.execute("CREATE TABLE t(a INTEGER)")
/// try db.run("INSERT INTO t VALUES (?)", [.int(1)])
/// let rows = try db.query("SELECT a FROM t")   // [[.int(1)]]
/// ```
public final class SQLiteDatabase: @unchecked Sendable {
    public enum Value: Sendable, Equatable, Hashable, CustomStringConvertible {
        case null
        case int(Int64)
        case double(Double)
        case text(String)

        public var description: String {
            switch self {
            case .null: "NULL"
            case .int(let i): String(i)
            case .double(let d): String(d)
            case .text(let s): s
            }
        }
        public var int: Int64? {
            switch self {
            case .int(let i): i
            case .double(let d): Int64(d)
            default: nil
            }
        }
        public var double: Double? {
            switch self {
            case .int(let i): Double(i)
            case .double(let d): d
            default: nil
            }
        }
        public var text: String? { if case .text(let s) = self { s } else { nil } }
    }

    private let handle: OpaquePointer
    public let path: String

    public init(path: String) throws {
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let db { sqlite3_close(db) }
            throw MLStoreError(.io, "cannot open the database \(path): \(msg)")
        }
        handle = db
        self.path = path
        sqlite3_busy_timeout(db, 10_000)
    }

    deinit { sqlite3_close(handle) }

    private func error(_ what: String) -> MLStoreError {
        let msg = String(cString: sqlite3_errmsg(handle))
        let code = sqlite3_errcode(handle)
        if code == SQLITE_CORRUPT || code == SQLITE_NOTADB {
            return MLStoreError(.corrupt, "the database \(path) is damaged (\(what): \(msg))")
        }
        return MLStoreError(.io, "database \(path): \(what): \(msg)")
    }

    /// Runs one or more statements without parameters.
    public func execute(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(handle, sql, nil, nil, &err) != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(err)
            let code = sqlite3_errcode(handle)
            if code == SQLITE_CORRUPT || code == SQLITE_NOTADB {
                throw MLStoreError(.corrupt, "the database \(path) is damaged: \(msg)")
            }
            throw MLStoreError(.io, "database \(path): \(msg)")
        }
    }

    /// A prepared statement, reusable with new bindings (for bulk inserts).
    public final class Statement {
        let stmt: OpaquePointer
        unowned let db: SQLiteDatabase
        init(_ stmt: OpaquePointer, _ db: SQLiteDatabase) {
            self.stmt = stmt
            self.db = db
        }
        deinit { sqlite3_finalize(stmt) }

        func bind(_ values: [Value]) throws {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
            for (i, v) in values.enumerated() {
                let idx = Int32(i + 1)
                let rc: Int32
                switch v {
                case .null: rc = sqlite3_bind_null(stmt, idx)
                case .int(let x): rc = sqlite3_bind_int64(stmt, idx, x)
                case .double(let x): rc = sqlite3_bind_double(stmt, idx, x)
                case .text(let s):
                    rc = sqlite3_bind_text(stmt, idx, s, -1, unsafeBitCast(CMLStoreSQLite_transient(), to: sqlite3_destructor_type.self))
                }
                guard rc == SQLITE_OK else { throw db.error("bind") }
            }
        }

        /// Executes with the values (for INSERT/UPDATE/DELETE).
        public func run(_ values: [Value] = []) throws {
            try bind(values)
            let rc = sqlite3_step(stmt)
            guard rc == SQLITE_DONE || rc == SQLITE_ROW else { throw db.error("step") }
        }

        /// Executes and returns all rows.
        public func query(_ values: [Value] = []) throws -> [[Value]] {
            try bind(values)
            var rows: [[Value]] = []
            while true {
                let rc = sqlite3_step(stmt)
                if rc == SQLITE_DONE { break }
                guard rc == SQLITE_ROW else { throw db.error("step") }
                let n = sqlite3_column_count(stmt)
                var row: [Value] = []
                row.reserveCapacity(Int(n))
                for c in 0..<n {
                    switch sqlite3_column_type(stmt, c) {
                    case SQLITE_INTEGER: row.append(.int(sqlite3_column_int64(stmt, c)))
                    case SQLITE_FLOAT: row.append(.double(sqlite3_column_double(stmt, c)))
                    case SQLITE_NULL: row.append(.null)
                    default:
                        if let t = sqlite3_column_text(stmt, c) { row.append(.text(String(cString: t))) } else { row.append(.null) }
                    }
                }
                rows.append(row)
            }
            return rows
        }
    }

    public func prepare(_ sql: String) throws -> Statement {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else { throw error("prepare") }
        return Statement(stmt, self)
    }

    public func run(_ sql: String, _ values: [Value] = []) throws { try prepare(sql).run(values) }
    public func query(_ sql: String, _ values: [Value] = []) throws -> [[Value]] { try prepare(sql).query(values) }

    /// Runs `body` in a transaction (committed if it returns, rolled back if it throws).
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let r = try body()
            try execute("COMMIT")
            return r
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}
