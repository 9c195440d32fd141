import Foundation
import ArgumentParser
import MLStoreBasics
import MLStoreCore

extension MLStoreCommand {
    struct RemoteCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remote", abstract: "Manage remotes (shared directories, s3:// buckets, http:// servers).",
            subcommands: [Add.self, List.self, Remove.self, SetToken.self], defaultSubcommand: List.self)

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "add",
                abstract: "Add a remote: mlstore remote add <name> <path | file:// URL | s3://bucket/prefix | http://host:port>.",
                discussion: """
                    S3 (and S3-compatible stores): credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY \
                    (AWS_SESSION_TOKEN) or a ~/.aws/credentials profile (AWS_PROFILE), never from the mlstore config. \
                    The store is probed for conditional writes (If-None-Match / If-Match), which make concurrent \
                    pushes safe; a store without them is refused unless --unsafe-no-conditional-writes.
                    """)
            @Argument(help: "Remote name, e.g. origin.") var name: String
            @Argument(help: "A directory path, file:// URL, s3://bucket/prefix, or http(s)://host:port of `mlstore serve`.") var url: String
            @Option(help: "S3: endpoint URL of a non-AWS store, e.g. http://127.0.0.1:8333.") var endpoint: String?
            @Option(help: "S3: region (default: AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config, us-east-1).") var region: String?
            @Flag(name: .customLong("path-style"), inversion: .prefixedNo,
                  help: "S3: path-style addressing (endpoint/bucket/key) instead of virtual-hosted (bucket.endpoint/key); default: automatic.")
            var pathStyle: Bool?
            @Flag(name: .customLong("unsafe-no-conditional-writes"),
                  help: "S3: accept a store without conditional writes. Concurrent pushes can then overwrite each other's ref updates and lose commits.")
            var unsafeNoConditionalWrites = false
            @OptionGroup var options: StoreOptions

            func run() throws {
                let repo = try options.repository()
                let stored = url.contains("://") ? url : Path.absolute(url, base: Sys.currentDirectory())
                guard stored.hasPrefix("s3://") else {
                    if endpoint != nil || region != nil || pathStyle != nil || unsafeNoConditionalWrites {
                        throw MLStoreError(.usage, "--endpoint, --region, --path-style and --unsafe-no-conditional-writes apply to s3:// remotes only")
                    }
                    try repo.addRemote(name: name, url: stored)
                    if !options.json { print("Added remote \(name) → \(stored)") }
                    return
                }
                var settings = S3Settings(endpoint: endpoint, region: region, pathStyle: pathStyle)
                settings = try S3Settings(entries: Dictionary(uniqueKeysWithValues: settings.configEntries))
                let remote = try S3Remote(url: stored, settings: settings)
                // Checks credentials, the bucket, and conditional writes before anything is stored.
                if let problem = try remote.probeConditionalWrites() {
                    guard unsafeNoConditionalWrites else {
                        throw S3Remote.conditionalWritesRefusal(remote.location, endpoint: remote.client.endpoint, reason: problem)
                    }
                    settings.conditionalWrites = false
                    Terminal.warn("\(remote.location) does not support conditional writes (\(problem)); added anyway (--unsafe-no-conditional-writes): never push to it from two places at once")
                }
                try repo.addRemote(name: name, url: stored, settings: settings)
                if !options.json { print("Added remote \(name) → \(remote.location) at \(remote.client.endpoint)") }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "List remotes.")
            @OptionGroup var options: StoreOptions

            func run() throws {
                let remotes = try options.repository().remotes()
                if options.json { return try Terminal.printJSON(remotes.map { ["name": $0.name, "url": $0.url] }) }
                for r in remotes { print("\(r.name)\t\(r.url)") }
            }
        }

        struct SetToken: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "set-token",
                abstract: "Store the bearer token for an http(s) remote (read from stdin, never from the command line).",
                discussion: "The token is kept in .mlstore/config as remote.<name>.token, and the config is then made readable by its owner only (mode 0600). MLSTORE_TOKEN, when set, takes precedence. An empty line removes the token.")
            @Argument(help: "Remote name.") var name: String
            @OptionGroup var options: StoreOptions

            func run() throws {
                let repo = try options.repository()
                guard let remote = try repo.remotes().first(where: { $0.name == name }) else {
                    throw MLStoreError(.notFound, "no remote named \(name)", hint: "see `mlstore remote list`")
                }
                guard HTTPRemote.handles(remote.url) else {
                    throw MLStoreError(.usage, "\(name) is not an http(s) remote (\(remote.url))", hint: "tokens are for remotes served by `mlstore serve`")
                }
                if isatty(0) != 0 { FileHandle.standardError.write(Data("token for \(name): ".utf8)) }
                let token = (readLine(strippingNewline: true) ?? "").trimmingCharacters(in: .whitespaces)
                var cfg = try repo.config()
                cfg.set("remote.\(name).token", token.isEmpty ? nil : token)
                // A token is a secret: the config becomes readable by its owner only (as git's credential store).
                try cfg.save(mode: token.isEmpty ? nil : 0o600)
                if !options.json { print(token.isEmpty ? "Removed the token of \(name)" : "Stored the token of \(name)") }
            }
        }

        struct Remove: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a remote and its remote-tracking refs.")
            @Argument(help: "Remote name.") var name: String
            @OptionGroup var options: StoreOptions

            func run() throws {
                try options.repository().removeRemote(name: name)
                if !options.json { print("Removed remote \(name)") }
            }
        }
    }

    static func printTransfer(_ r: TransferReport, verb: String, json: Bool) throws {
        if json { return try Terminal.printJSON(r) }
        for u in r.refs {
            let short = u.ref.replacingOccurrences(of: "refs/heads/", with: "").replacingOccurrences(of: "refs/", with: "")
            let arrow = "\(u.old?.short ?? "(new)")..\(u.new?.short ?? "(gone)")"
            switch u.status {
            case .rejected: print(" ! " + Terminal.paint("[rejected]", .red) + " \(short): \(u.reason ?? "")")
            case .upToDate: print(" = \(Terminal.paint("[up to date]", .dim)) \(short)")
            case .created: print(" * \(Terminal.paint("[new]", .green)) \(short) \(arrow)")
            case .deleted: print(" - \(Terminal.paint("[deleted]", .yellow)) \(short)")
            case .forced: print(" + \(Terminal.paint("[forced]", .yellow)) \(short) \(arrow)")
            case .updated: print("   \(short) \(arrow)")
            }
        }
        print(Terminal.paint("\(verb) \(r.objects) objects (\(Terminal.bytes(r.bytes))) in \(String(format: "%.2f", r.seconds)) s \(verb == "sent" ? "to" : "from") \(r.remote)", .dim))
    }

    struct Push: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "push",
            abstract: "Upload objects and move refs on a remote (compare-and-swap; never a lost update).",
            discussion: """
                Default: the current branch. Also: --tags, --stages, --all, or names (branches, tags, model@stage). \
                A branch that is not a fast-forward, a stage whose remote history you lack, or a ref that moved \
                while pushing is rejected (exit 5) with what to do; --force overrides the history check but still \
                swaps against the value just read. The first push to an empty directory creates the store.
                """)

        @Argument(help: "Remote name or path (default: origin).") var remote: String = "origin"
        @Argument(help: "Branches, tags or model@stage to push.") var refs: [String] = []
        @Flag(help: "Push all tags.") var tags = false
        @Flag(help: "Push all stage refs (the registry).") var stages = false
        @Flag(help: "Push all branches, tags and stages.") var all = false
        @Flag(name: .shortAndLong, help: "Overwrite non-fast-forward refs (still compare-and-swap).") var force = false
        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            let r = try repo.push(to: remote, refs: refs, tags: tags, stages: stages, all: all, force: force, progress: Terminal.progressBar())
            try MLStoreCommand.printTransfer(r, verb: "sent", json: options.json)
            if r.rejected { throw CommandFailure(status: MLStoreError.Code.conflict.exitStatus) }
        }
    }

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "fetch",
            abstract: "Download a remote's objects and update remote-tracking refs (refs/remotes/<remote>/…, stages included).",
            discussion: "Every object is verified against its id before it enters the local store; a corrupt object fails the command and leaves the store unchanged. <remote>/<branch> then works as a revision.")

        @Argument(help: "Remote name (default: origin).") var remote: String = "origin"
        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            let partial = try repo.partialRemote() == remote
            let r = try repo.fetch(from: remote, content: partial ? .none : .all, progress: Terminal.progressBar())
            Tracking.refresh(repo)
            try MLStoreCommand.printTransfer(r, verb: "received", json: options.json)
        }
    }

    struct Pull: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "pull",
            abstract: "Fetch, fast-forward the current branch (and stages) and update the workspace.",
            discussion: "mlstore pull [<remote>] -- <path>... fetches only those paths' contents and restores them from the remote branch (the branch does not move).")

        @Argument(help: "Remote name (default: origin).") var remote: String = "origin"
        @Argument(parsing: .postTerminator, help: "Only these paths (after --).") var paths: [String] = []
        @OptionGroup var options: StoreOptions

        func run() throws {
            let ws = try options.workspace()
            let cwd = Sys.currentDirectory()
            let rels = try paths.map { try ws.relativePath($0, cwd: cwd) }
            let (report, outcome) = try ws.pull(from: remote, paths: rels.isEmpty ? nil : rels, progress: Terminal.progressBar())
            Tracking.refresh(ws.repo)
            if options.json {
                struct Out: Encodable { var fetch: TransferReport; var pull: PullOutcome }
                return try Terminal.printJSON(Out(fetch: report, pull: outcome))
            }
            try MLStoreCommand.printTransfer(report, verb: "received", json: false)
            switch outcome.kind {
            case .upToDate: print("Already up to date.")
            case .ahead: print("\(outcome.branch) is ahead of \(remote)/\(outcome.branch): nothing to pull (push your commits).")
            case .fastForward, .created: print("Fast-forward \(outcome.from?.short ?? "(none)")..\(outcome.to?.short ?? "") (\(outcome.checkout?.written.count ?? 0) restored, \(outcome.checkout?.removed.count ?? 0) removed)")
            case .pathsRestored: print("Restored \(outcome.checkout?.written.count ?? 0) file(s) from \(remote)/\(outcome.branch)")
            }
            if !outcome.stagesUpdated.isEmpty { print("Stages updated: " + outcome.stagesUpdated.joined(separator: ", ")) }
        }
    }

    struct Clone: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "clone",
            abstract: "Copy a remote into a new workspace (remote named origin) and check out its default branch.",
            discussion: "With --partial only metadata is fetched; file contents come on demand when a checkout needs them (e.g. `mlstore checkout fraud@production`).")

        @Argument(help: "A directory path, file:// URL, or s3://bucket/prefix.") var url: String
        @Argument(help: "Directory to create (default: the remote's name).") var directory: String?
        @Flag(help: "Fetch metadata only; contents on demand.") var partial = false
        @Flag(name: .customLong("no-checkout"), help: "Do not check out files.") var noCheckout = false
        @Option(help: "S3: endpoint URL of a non-AWS store (kept as remote.origin.endpoint).") var endpoint: String?
        @Option(help: "S3: region.") var region: String?
        @Flag(name: .customLong("path-style"), inversion: .prefixedNo, help: "S3: path-style addressing.") var pathStyle: Bool?
        @Flag(help: "Print machine-readable JSON.") var json = false

        func run() throws {
            var name = Path.basename(url.hasSuffix("/") ? String(url.dropLast()) : url)
            if name.hasSuffix(".mlstore") { name = String(name.dropLast(8)) }
            let dir = directory ?? (name.isEmpty ? "clone" : name)
            var source = url
            let s3 = S3Settings(endpoint: endpoint, region: region, pathStyle: pathStyle).configEntries
            if !s3.isEmpty {
                guard url.hasPrefix("s3://") else { throw MLStoreError(.usage, "--endpoint, --region and --path-style apply to s3:// remotes only") }
                // Carried in the URL's query; `remote add` stores them as remote.origin.<key>.
                let query = s3.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0.1)" }.joined(separator: "&")
                source += (url.contains("?") ? "&" : "?") + query
            }
            let (repo, report, branch) = try Repository.clone(url: source, into: dir, partial: partial, checkout: !noCheckout, progress: Terminal.progressBar())
            if json {
                struct Out: Encodable { var workspace: String; var branch: String?; var fetch: TransferReport }
                return try Terminal.printJSON(Out(workspace: repo.workspaceRoot ?? dir, branch: branch, fetch: report))
            }
            print("Cloned \(url) into \(repo.workspaceRoot ?? dir) (\(report.objects) objects, \(Terminal.bytes(report.bytes)))\(branch.map { ", on branch \($0)" } ?? " (empty remote)")")
        }
    }
}
