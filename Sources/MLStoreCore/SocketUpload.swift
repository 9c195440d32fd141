import Foundation
import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// One HTTP/1.1 request whose body is a file, sent over a plain TCP socket with `sendfile(2)`.
///
/// Used for `http://` pack uploads: URLSession on Linux feeds request bodies to libcurl through small
/// buffers and measured ≈100 MB/s with 2 s of system time per 256 MiB here; `sendfile` moves the file at
/// memory speed. (`https://` keeps URLSession.) One connection per request (`Connection: close`); the
/// response must be small (a JSON answer) and is read whole.
enum SocketUpload {
    /// A socket-level failure (connect, send, receive, timeout): retried by ``HTTPClient/send(_:sink:what:)``.
    static func send(_ r: HTTPClient.Request, file: String, timeout: Double) throws -> HTTPClient.Response {
        _ = ignoreSIGPIPE
        guard let c = URLComponents(string: r.url), c.scheme?.lowercased() == "http",
            let host = c.host.map({ $0.hasPrefix("[") && $0.hasSuffix("]") ? String($0.dropFirst().dropLast()) : $0 })
        else {
            throw MLStoreError(.usage, "not an http:// URL: \(r.url)")
        }
        let port = c.port ?? 80
        let fileFD = try Sys.open(file, O_RDONLY)
        defer { Sys.close(fileFD) }
        let size = try Sys.fstat(fileFD, path: file).size
        let sock = try connect(host: host, port: port, timeout: timeout)
        defer { Glibc.close(sock) }

        var target = c.percentEncodedPath.isEmpty ? "/" : c.percentEncodedPath
        if let q = c.percentEncodedQuery { target += "?" + q }
        // The Host header as the URL writes it (signatures such as SigV4 cover it).
        let hostHeader = r.headers.first { $0.key.lowercased() == "host" }?.value ?? (c.port.map { "\(c.host!):\($0)" } ?? c.host!)
        var head = "\(r.method) \(target) HTTP/1.1\r\nHost: \(hostHeader)\r\nContent-Length: \(size)\r\n"
        for (k, v) in r.headers where k.lowercased() != "content-length" && k.lowercased() != "connection" && k.lowercased() != "host" {
            head += "\(k): \(v)\r\n"
        }
        head += "\r\n"
        // A server that answers early (401, 413) closes its side: what it said is still read below.
        var sendError: String?
        do {
            try writeAll(sock, Array(head.utf8))
            var offset: off_t = 0
            while offset < size {
                let n = sendfile(sock, fileFD, &offset, Int(min(Int64(size) - Int64(offset), 1 << 30)))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw HTTPClient.TransportError(description: errno == EAGAIN ? "timed out" : "send failed: \(String(cString: strerror(errno)))")
                }
                if n == 0 { throw HTTPClient.TransportError(description: "the file shrank while it was sent") }
            }
        } catch let e as HTTPClient.TransportError {
            sendError = e.description
        }
        let raw = try readAll(sock, limit: 16 << 20)
        guard let response = parse(raw) else {
            throw HTTPClient.TransportError(description: sendError ?? "no HTTP response")
        }
        return response
    }

    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN); return () }()

    static func connect(host: String, port: Int, timeout: Double) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw HTTPClient.TransportError(description: "unknown host \(host)")
        }
        defer { freeaddrinfo(list) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        var lastError = "connection refused"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            defer { ai = a.pointee.ai_next }
            let s = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if s < 0 { continue }
            setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            if Glibc.connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { return s }
            lastError = errno == ECONNREFUSED ? "connection refused" : String(cString: strerror(errno))
            Glibc.close(s)
        }
        throw HTTPClient.TransportError(description: lastError)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HTTPClient.TransportError(description: "send failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    static func readAll(_ fd: Int32, limit: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 64 << 10)
        while out.count < limit {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET, !out.isEmpty { break }
                throw HTTPClient.TransportError(description: errno == EAGAIN ? "timed out waiting for the response" : "receive failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
            if let r = parse(out), let len = r.header("content-length").flatMap(Int.init), r.body.count >= len { break }
        }
        return out
    }

    /// Parses a complete response: status line, headers, and a body by Content-Length or chunked encoding.
    static func parse(_ raw: [UInt8]) -> HTTPClient.Response? {
        let sep: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, raw.count - 3)).first(where: { raw[$0..<$0 + 4].elementsEqual(sep) }) else { return nil }
        let head = String(decoding: raw[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let status = head.first?.split(separator: " ")
        guard let status, status.count >= 2, status[0].hasPrefix("HTTP/1."), let code = Int(status[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(raw[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            var decoded: [UInt8] = []
            var i = 0
            while let lineEnd = (i..<max(i, body.count - 1)).first(where: { body[$0] == 13 && body[$0 + 1] == 10 }),
                let n = Int(String(decoding: body[i..<lineEnd], as: UTF8.self).split(separator: ";").first ?? "", radix: 16)
            {
                if n == 0 { break }
                let start = lineEnd + 2
                guard start + n <= body.count else { return nil }
                decoded += body[start..<start + n]
                i = start + n + 2
            }
            body = decoded
        } else if let len = headers["content-length"].flatMap(Int.init) {
            guard body.count >= len else { return nil }
            body = Array(body[0..<len])
        }
        return HTTPClient.Response(status: code, headers: headers, body: Data(body))
    }
}
