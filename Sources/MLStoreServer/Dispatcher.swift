import Dispatch
import Foundation
import Hummingbird
import MLStoreBasics
import MLStoreCore
import NIOCore

/// Routes every request: authentication, the remote API under `/api/v1/` (spec/http.md), the login form,
/// and the web UI. Errors become JSON bodies (API) or short pages (UI) with the matching status.
struct Dispatcher: HTTPResponder {
    typealias Context = BasicRequestContext
    let server: StoreServer

    /// The caller: scope and a name for logs and reflogs.
    struct Caller {
        var scope: Scope
        var name: String
    }

    /// A failure that is answered with a status (and the MLStoreError-shaped body).
    struct Refusal: Error {
        var status: HTTPResponse.Status
        var error: MLStoreError
        var current: ObjectID?
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        let started = DispatchTime.now().uptimeNanoseconds
        let path = request.uri.path
        var caller = Caller(scope: .none, name: "-")
        var response: Response
        do {
            caller = try authenticate(request)
            response = try await route(request, path: path, caller: caller)
        } catch let r as Refusal {
            response = errorResponse(r, api: path.hasPrefix("/api/"))
        } catch let e as MLStoreError {
            response = errorResponse(Refusal(status: .init(code: HTTPProtocol.status(for: e.code)), error: e), api: path.hasPrefix("/api/"))
        } catch is NIOTooManyBytesError {
            response = errorResponse(Refusal(status: .contentTooLarge, error: MLStoreError(.usage, "the request body is too large")), api: path.hasPrefix("/api/"))
        } catch let e as HTTPError where e.status == .contentTooLarge {
            response = errorResponse(Refusal(status: .contentTooLarge, error: MLStoreError(.usage, "the request body is too large")), api: true)
        } catch {
            response = errorResponse(Refusal(status: .internalServerError, error: MLStoreError(.failed, "\(error)")), api: path.hasPrefix("/api/"))
        }
        server.log(request.method.rawValue, path, status: response.status.code, bytes: response.body.contentLength, started: started, who: caller.name)
        return response
    }

    // MARK: Authentication

    /// Bearer token, else the UI's login cookie, else anonymous (read if the operator allows it).
    /// A token that is given but unknown is refused outright. The cookie grants at most read scope: the UI
    /// only reads, so a forged cross-site request can never write.
    func authenticate(_ request: Request) throws -> Caller {
        var token: String?
        var fromCookie = false
        if let auth = request.headers[.authorization] {
            guard auth.lowercased().hasPrefix("bearer "), auth.count > 7 else {
                throw Refusal(status: .unauthorized, error: MLStoreError(.denied, "the Authorization header must be `Bearer <token>`"))
            }
            token = String(auth.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        } else if let cookie = Self.cookie(request, "mlstore_token") {
            token = cookie
            fromCookie = true
        }
        if let token {
            guard let h = server.tokens.holder(of: token) else {
                if fromCookie { return Caller(scope: server.options.anonymousRead ? .read : .none, name: "anonymous") }
                throw Refusal(status: .unauthorized, error: MLStoreError(.denied, "the token is not known to this server", hint: "check MLSTORE_TOKEN or the remote's token"))
            }
            return Caller(scope: fromCookie ? min(h.scope, .read) : h.scope, name: h.name)
        }
        return Caller(scope: server.options.anonymousRead ? .read : .none, name: "anonymous")
    }

    static func cookie(_ request: Request, _ name: String) -> String? {
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0] == name { return String(kv[1]).removingPercentEncoding }
            }
        }
        return nil
    }

    func require(_ scope: Scope, _ caller: Caller, for what: String) throws {
        guard caller.scope < scope else { return }
        if caller.scope == .none || caller.name == "anonymous" {
            throw Refusal(status: .unauthorized, error: MLStoreError(.denied, "\(what) needs a token", hint: "send `Authorization: Bearer <token>` (MLSTORE_TOKEN for mlstore clients)"))
        }
        throw Refusal(status: .forbidden, error: MLStoreError(.denied, "\(what) needs a write token; \(caller.name) has read-only scope",
                                                              hint: "ask the server's operator for a token with write scope"))
    }

    // MARK: Routing

    func route(_ request: Request, path: String, caller: Caller) async throws -> Response {
        let method = request.method
        let api = HTTPProtocol.apiPrefix
        if path.hasPrefix(api + "/") || path == api {
            let rest = String(path.dropFirst(api.count))
            let parts = rest.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
            return try await routeAPI(request, method: method, parts: parts, caller: caller)
        }
        switch (method, path) {
        case (.get, "/login"): return html(200, Self.loginPage(message: nil))
        case (.post, "/login"): return try await login(request)
        case (.post, "/logout"), (.get, "/logout"):
            var r = redirect("/login")
            r.headers[.setCookie] = "mlstore_token=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
            return r
        default: break
        }
        guard method == .get || method == .head else {
            throw Refusal(status: .methodNotAllowed, error: MLStoreError(.usage, "\(method.rawValue) is not allowed on \(path)"))
        }
        guard caller.scope >= .read else { return redirect("/login") }
        let query = Self.query(request)
        let ui = server.ui
        guard let page = try await server.blocking({ try ui.render(path: path, query: query) }) else {
            throw Refusal(status: .notFound, error: MLStoreError(.notFound, "no page at \(path)"))
        }
        var headers: HTTPFields = [.contentType: page.contentType, .cacheControl: "no-store"]
        headers[.init("X-Content-Type-Options")!] = "nosniff"
        return Response(status: .init(code: page.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: page.body)))
    }

    /// Query items as browsers send them (`+` is a space in form submissions).
    static func query(_ request: Request) -> [String: String] {
        URLCoding.parseQuery(request.uri.query)
    }

    func routeAPI(_ request: Request, method: HTTPRequest.Method, parts: [String], caller: Caller) async throws -> Response {
        let api = API(server: server, caller: caller)
        let name = parts.first ?? ""
        let arg = parts.count == 2 ? parts[1] : nil
        let isGet = method == .get || method == .head
        switch (name, parts.count) {
        case ("info", 1) where method == .get:
            return try await api.info()
        case ("refs", 1) where method == .get:
            try require(.read, caller, for: "listing refs")
            return try await api.refs()
        case ("refs", 2) where method == .post && arg == "update":
            try require(.write, caller, for: "moving a ref")
            return try await api.updateRef(request)
        case ("head", 1) where method == .put:
            try require(.write, caller, for: "setting HEAD")
            return try await api.setHead(request)
        case ("objects", 2) where method == .post && arg == "have":
            try require(.read, caller, for: "asking for objects")
            return try await api.have(request)
        case ("objects", 2) where method == .post && arg == "read":
            try require(.read, caller, for: "reading objects")
            return try await api.readMany(request)
        case ("objects", 2) where isGet:
            try require(.read, caller, for: "reading objects")
            return try await api.object(try API.objectID(arg!), headOnly: method == .head)
        case ("packs", 1) where method == .post:
            try require(.write, caller, for: "uploading objects")
            return try await api.upload(request)
        case ("leases", 1) where method == .post:
            try require(.write, caller, for: "pushing")
            return try await api.newLease()
        case ("leases", 2) where method == .post:
            try require(.write, caller, for: "pushing")
            return try api.renewLease(arg!)
        case ("leases", 2) where method == .delete:
            try require(.write, caller, for: "pushing")
            return try api.releaseLease(arg!)
        case ("fsck", 1) where method == .get:
            try require(.read, caller, for: "checking the store")
            return try await api.fsck()
        case ("download", 2) where isGet:
            try require(.read, caller, for: "downloading")
            return try await api.download(try API.objectID(arg!), name: Self.query(request)["name"], headOnly: method == .head)
        default:
            throw Refusal(status: .notFound, error: MLStoreError(.notFound, "no API endpoint \(method.rawValue) \(request.uri.path)", hint: "see spec/http.md"))
        }
    }

    // MARK: Login (for browsers; API clients send the token in a header)

    func login(_ request: Request) async throws -> Response {
        var req = request
        let body = try await req.collectBody(upTo: 16 << 10)
        let form = String(buffer: body)
        var token = ""
        for pair in form.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0] == "token" {
                token = String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
        }
        guard server.tokens.holder(of: token) != nil else {
            return html(401, Self.loginPage(message: "That token is not known to this server."))
        }
        var r = redirect("/")
        let value = token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        r.headers[.setCookie] = "mlstore_token=\(value); Path=/; HttpOnly; SameSite=Strict"
        return r
    }

    static func loginPage(message: String?) -> String {
        let note = message.map { "<p class=\"error\">\(HTML.escape($0))</p>" } ?? ""
        return """
            <!doctype html><html><head><meta charset="utf-8"><title>mlstore — sign in</title>
            <style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;color:#222}
            input{width:100%;padding:.5rem;margin:.5rem 0;box-sizing:border-box}.error{color:#b00020}
            button{padding:.5rem 1rem}</style></head><body>
            <h1>mlstore</h1><p>This server needs a token to show its runs and models.</p>\(note)
            <form method="post" action="/login"><label>Token <input type="password" name="token" autofocus></label>
            <button type="submit">Sign in</button></form></body></html>
            """
    }

    // MARK: Responses

    func html(_ status: Int, _ text: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location], body: .init())
    }

    func errorResponse(_ r: Refusal, api: Bool) -> Response {
        var headers: HTTPFields = [:]
        if r.status == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"mlstore\"" }
        if api {
            let body = HTTPProtocol.ErrorBody(code: r.error.code.name, error: r.error.message, hint: r.error.hint, current: r.current)
            headers[.contentType] = "application/json"
            let data = (try? JSONEncoder().encode(body)) ?? Data()
            return Response(status: r.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        let page = server.ui.errorPage(status: r.status.code, message: r.error.message, hint: r.error.hint)
        headers[.contentType] = page.contentType
        return Response(status: r.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: page.body)))
    }
}

extension TokenTable {
    var isEmpty: Bool { count == 0 }
}
