import Foundation
import Testing

@testable import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

/// S3-compatible servers for the tests, on loopback: one SeaweedFS and one moto per test process (started on
/// first use, on free ports, stopped when the process exits), installed by `scripts/s3-test-servers.sh install`
/// into a venv (CI runs it before `swift test`; a test run installs it if missing), and a tiny in-process-free
/// Python fake without conditional writes.
final class S3TestServer: @unchecked Sendable {
    enum Kind: String { case seaweedfs, moto, fake }

    let kind: Kind
    let endpoint: String
    let process: Process
    let dir: TempDir
    static let bucket = "mlstore-tests"

    /// The credentials SeaweedFS is configured with (moto and the fake accept any).
    static let env: [String: String] = [
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "", "AWS_REGION": "us-east-1",
        "AWS_PROFILE": "", "AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_S3": "", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "MLSTORE_AUTHOR_NAME": "Tester", "MLSTORE_AUTHOR_EMAIL": "t@example.com",
    ]

    static let seaweedfs = Result { try S3TestServer(.seaweedfs) }
    static let moto = Result { try S3TestServer(.moto) }

    static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    static var venv: String {
        let e = ProcessInfo.processInfo.environment
        return e["MLSTORE_S3_VENV"].flatMap { $0.isEmpty ? nil : $0 } ?? ((e["HOME"] ?? "/root") + "/.cache/mlstore-s3-venv")
    }

    static let installed: Result<Void, TestFailure> = {
        if FileManager.default.isExecutableFile(atPath: venv + "/bin/weed"), FileManager.default.isExecutableFile(atPath: venv + "/bin/moto_server") {
            return .success(())
        }
        let out = try? CLI.run("/bin/bash", [repoRoot + "/scripts/s3-test-servers.sh", "install"], in: repoRoot)
        guard let out, out.status == 0 else {
            return .failure(TestFailure("cannot install the S3 test servers (scripts/s3-test-servers.sh install): \(out.map { "\($0)" } ?? "did not run")"))
        }
        return .success(())
    }()

    /// A TCP port on 127.0.0.1 nobody listens on (bind test).
    static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// A base port whose SeaweedFS ports (base, +2, +4, +6, +8 and each +10000) are free, below the ephemeral range.
    static func freeBase(span: [Int]) -> Int? {
        for _ in 0..<200 {
            let base = 10_000 + Int.random(in: 0..<990) * 10
            if span.allSatisfy({ isFree(base + $0) }) { return base }
        }
        return nil
    }

    static func connects(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    init(_ kind: Kind, flaky: Bool = false) throws {
        self.kind = kind
        if kind != .fake { try Self.installed.get() }
        var lastError = "not started"
        for _ in 0..<4 {
            let dir = try TempDir(prefix: "mlstore-s3-\(kind.rawValue)")
            let span = kind == .seaweedfs ? [0, 2, 4, 6, 8, 10_000, 10_002, 10_004, 10_006, 10_008] : [0]
            guard let port = Self.freeBase(span: span) else { throw TestFailure("no free ports for \(kind)") }
            let p = Process()
            switch kind {
            case .seaweedfs, .moto:
                p.executableURL = URL(fileURLWithPath: "/bin/bash")
                p.arguments = [Self.repoRoot + "/scripts/s3-test-servers.sh", kind.rawValue, dir.path, "\(port)", "\(getpid())"]
            case .fake:
                try FS.write(dir.path + "/fake.py", Self.fakeServer)
                if flaky { try FS.write(dir.path + "/flaky", "") }
                p.executableURL = URL(fileURLWithPath: CLI.which("python3") ?? "/usr/bin/python3")
                p.arguments = [dir.path + "/fake.py", "\(port)", "\(getpid())"]
            }
            FileManager.default.createFile(atPath: dir.path + "/server.log", contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.path + "/server.log"))
            p.standardOutput = log
            p.standardError = log
            p.standardInput = FileHandle.nullDevice
            try p.run()
            let endpoint = "http://127.0.0.1:\(port)"
            // Ready when the port answers and (SeaweedFS) the filer behind it accepts a bucket.
            let deadline = Date().addingTimeInterval(90)
            var ready = false
            while Date() < deadline, p.isRunning {
                if Self.connects(port) {
                    ready = true
                    break
                }
                usleep(100_000)
            }
            if ready, kind != .fake {
                ready = false
                let client = try S3Client(bucket: Self.bucket, settings: S3Settings(endpoint: endpoint), environment: Self.env)
                while Date() < deadline, p.isRunning {
                    if let r = try? client.send("PUT", key: nil), r.status == 200 || r.status == 409 {
                        ready = true
                        break
                    }
                    usleep(200_000)
                }
            }
            if ready {
                self.endpoint = endpoint
                process = p
                self.dir = dir
                Self.stopAtExit(p)
                return
            }
            p.terminate()
            p.waitUntilExit()
            lastError = (FS.readText(dir.path + "/server.log") ?? "").suffix(2000).description
            dir.remove()
        }
        throw TestFailure("\(kind) did not start: \(lastError)")
    }

    private static let running = LockedPIDs()
    final class LockedPIDs: @unchecked Sendable {
        let lock = NSLock()
        var pids: [pid_t] = []
    }

    private static func stopAtExit(_ p: Process) {
        running.lock.lock()
        let first = running.pids.isEmpty
        running.pids.append(p.processIdentifier)
        running.lock.unlock()
        if first {
            atexit {
                S3TestServer.running.lock.lock()
                for pid in S3TestServer.running.pids { kill(pid, SIGTERM) }
                S3TestServer.running.lock.unlock()
            }
        }
    }

    /// A client for the tests' own reads and writes (creating buckets, damaging objects).
    func client(bucket: String = S3TestServer.bucket) throws -> S3Client {
        try S3Client(bucket: bucket, settings: S3Settings(endpoint: endpoint), environment: Self.env)
    }

    /// A fresh prefix for one test.
    static func prefix(_ label: String) -> String { "\(label)-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))" }

    /// An S3 server without conditional writes (If-None-Match / If-Match are ignored), optionally answering
    /// every third request with 503. Minimal S3: ListObjectsV2, GET (with Range), PUT, DELETE.
    static let fakeServer = #"""
        import sys, os, threading, hashlib, time
        from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
        from urllib.parse import urlsplit, parse_qs, unquote
        port, owner = int(sys.argv[1]), int(sys.argv[2])
        store, lock, counter = {}, threading.Lock(), [0]
        flaky = os.path.exists(os.path.join(os.path.dirname(__file__), "flaky"))
        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *a): pass
            def reply(self, code, body=b"", headers={}):
                self.send_response(code)
                for k, v in headers.items(): self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def split(self):
                u = urlsplit(self.path)
                parts = u.path.lstrip("/").split("/", 1)
                return parts[0], unquote(parts[1]) if len(parts) > 1 else "", parse_qs(u.query, keep_blank_values=True)
            def flake(self):
                with lock:
                    counter[0] += 1
                    return flaky and counter[0] % 3 == 0
            def body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""
            def do_GET(self):
                if self.flake(): return self.reply(503, b"<Error><Code>SlowDown</Code></Error>")
                b, k, q = self.split()
                if not k:
                    p = q.get("prefix", [""])[0]
                    with lock: items = sorted((kk, v) for kk, v in store.items() if kk.startswith(p))
                    xml = "<ListBucketResult>" + "".join("<Contents><Key>%s</Key><Size>%d</Size><ETag>&quot;%s&quot;</ETag></Contents>" % (kk, len(v), hashlib.md5(v).hexdigest()) for kk, v in items) + "<IsTruncated>false</IsTruncated></ListBucketResult>"
                    return self.reply(200, xml.encode())
                with lock: v = store.get(k)
                if v is None: return self.reply(404, b"<Error><Code>NoSuchKey</Code></Error>")
                etag = '"%s"' % hashlib.md5(v).hexdigest()
                r = self.headers.get("Range")
                if r:
                    a, z = r.split("=")[1].split("-")
                    return self.reply(206, v[int(a):int(z) + 1], {"ETag": etag})
                self.reply(200, v, {"ETag": etag})
            def do_PUT(self):
                data = self.body()
                if self.flake(): return self.reply(503, b"<Error><Code>SlowDown</Code></Error>")
                b, k, q = self.split()
                if not k: return self.reply(200)
                with lock: store[k] = data
                self.reply(200, b"", {"ETag": '"%s"' % hashlib.md5(data).hexdigest()})
            def do_DELETE(self):
                if self.flake(): return self.reply(503, b"<Error><Code>SlowDown</Code></Error>")
                b, k, q = self.split()
                with lock: store.pop(k, None)
                self.reply(204)
        srv = ThreadingHTTPServer(("127.0.0.1", port), H)
        def watch():
            while True:
                try: os.kill(owner, 0)
                except OSError: os._exit(0)
                time.sleep(0.5)
        threading.Thread(target=watch, daemon=True).start()
        srv.serve_forever()
        """#
}
