import Foundation
import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// One HTTP/1.1 request whose body is a file, sent over a plain TCP socket with `sendfile(2)`.
///
/// Used for `http://` pack uploads: URLSession on Linux feeds request bodies to libcurl through small
/// buffers and measured ≈100 MB/s with 2 s of system time per 256 MiB here; `sendfile` moves the file at
/// memory speed. (`https://` keeps URLSession.) One connection per request, closed by us after the response
/// (no `Connection: close`: a server refusing early then drops the connection instead of waiting for the
/// body); the response must be small (a JSON answer) and is read whole. Socket calls live in
/// ``TCPConnection`` (MLStoreBasics).
enum SocketUpload {
    /// A socket-level failure (connect, send, receive, timeout) is a ``HTTPClient/TransportError``: retried by
    /// ``HTTPClient/send(_:sink:what:)``.
    static func send(_ r: HTTPClient.Request, file: String, timeout: Double) throws -> HTTPClient.Response {
        guard let c = URLComponents(string: r.url), c.scheme?.lowercased() == "http", let urlHost = c.host else {
            throw MLStoreError(.usage, "not an http:// URL: \(r.url)")
        }
        let host = urlHost.hasPrefix("[") && urlHost.hasSuffix("]") ? String(urlHost.dropFirst().dropLast()) : urlHost
        let fileFD = try Sys.open(file, O_RDONLY)
        defer { Sys.close(fileFD) }
        let size = try Sys.fstat(fileFD, path: file).size
        var target = c.percentEncodedPath.isEmpty ? "/" : c.percentEncodedPath
        if let q = c.percentEncodedQuery { target += "?" + q }
        // The Host header as the URL writes it (signatures such as SigV4 cover it).
        let hostHeader = r.headers.first { $0.key.lowercased() == "host" }?.value ?? (c.port.map { "\(urlHost):\($0)" } ?? urlHost)
        var head = "\(r.method) \(target) HTTP/1.1\r\nHost: \(hostHeader)\r\nContent-Length: \(size)\r\n"
        for (k, v) in r.headers where !["content-length", "connection", "host"].contains(k.lowercased()) {
            head += "\(k): \(v)\r\n"
        }
        head += "\r\n"
        do {
            let connection = try TCPConnection(host: host, port: c.port ?? 80, timeoutSeconds: timeout)
            // A server that answers early (401, 413) stops reading: what it said is still read below.
            var sendError: String?
            do {
                try connection.send(Array(head.utf8))
                try connection.sendFile(fileFD, count: size)
            } catch let e as TCPConnection.Failure {
                sendError = e.description
            }
            guard let response = try readResponse(connection, limit: 16 << 20) else {
                throw HTTPClient.TransportError(description: sendError ?? "no HTTP response")
            }
            return response
        } catch let e as TCPConnection.Failure {
            throw HTTPClient.TransportError(description: e.description)
        }
    }

    /// Reads one response: the head, then a body framed by Content-Length, chunked encoding, or the end of the
    /// stream. nil if the stream ends before a complete response. The head is parsed once.
    static func readResponse(_ connection: TCPConnection, limit: Int) throws -> HTTPClient.Response? {
        var raw: [UInt8] = []
        var headEnd: Int?
        var searched = 0
        while raw.count < limit {
            let bytes = try connection.receive()
            if bytes.isEmpty { break }
            raw += bytes
            if headEnd == nil {
                let from = max(0, searched - 3)
                headEnd = (from..<max(from, raw.count - 3)).first { raw[$0] == 13 && raw[$0 + 1] == 10 && raw[$0 + 2] == 13 && raw[$0 + 3] == 10 }
                searched = raw.count
            }
            // Stop as soon as a Content-Length body is complete (the connection may stay open).
            if let end = headEnd, let len = contentLength(raw[0..<end]), raw.count - end - 4 >= len { break }
        }
        return parse(raw)
    }

    static func contentLength(_ head: ArraySlice<UInt8>) -> Int? {
        for line in String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" { return Int(parts[1].trimmingCharacters(in: .whitespaces)) }
        }
        return nil
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
