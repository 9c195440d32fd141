import ArgumentParser
import MLStoreBasics
import MLStoreCore

extension MLStoreCommand {
    struct RemoteCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remote", abstract: "Manage remotes (shared directories now; s3:// and http(s):// later).",
            subcommands: [Add.self, List.self, Remove.self], defaultSubcommand: List.self)

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Add a remote: mlstore remote add <name> <path or file:// URL>.")
            @Argument(help: "Remote name, e.g. origin.") var name: String
            @Argument(help: "A directory path or file:// URL.") var url: String
            @OptionGroup var options: StoreOptions

            func run() throws {
                let repo = try options.repository()
                let stored = url.contains("://") ? url : Path.absolute(url, base: Sys.currentDirectory())
                try repo.addRemote(name: name, url: stored)
                if !options.json { print("Added remote \(name) → \(stored)") }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List remotes.")
            @OptionGroup var options: StoreOptions

            func run() throws {
                let remotes = try options.repository().remotes()
                if options.json { return try Terminal.printJSON(remotes.map { ["name": $0.name, "url": $0.url] }) }
                for r in remotes { print("\(r.name)\t\(r.url)") }
            }
        }

        struct Remove: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove a remote and its remote-tracking refs.")
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
        static let configuration = CommandConfiguration(
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
        static let configuration = CommandConfiguration(
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
        static let configuration = CommandConfiguration(
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
        static let configuration = CommandConfiguration(
            abstract: "Copy a remote into a new workspace (remote named origin) and check out its default branch.",
            discussion: "With --partial only metadata is fetched; file contents come on demand when a checkout needs them (e.g. `mlstore checkout fraud@production`).")

        @Argument(help: "A directory path or file:// URL.") var url: String
        @Argument(help: "Directory to create (default: the remote's name).") var directory: String?
        @Flag(help: "Fetch metadata only; contents on demand.") var partial = false
        @Flag(name: .customLong("no-checkout"), help: "Do not check out files.") var noCheckout = false
        @Flag(help: "Print machine-readable JSON.") var json = false

        func run() throws {
            var name = Path.basename(url.hasSuffix("/") ? String(url.dropLast()) : url)
            if name.hasSuffix(".mlstore") { name = String(name.dropLast(8)) }
            let dir = directory ?? (name.isEmpty ? "clone" : name)
            let (repo, report, branch) = try Repository.clone(url: url, into: dir, partial: partial, checkout: !noCheckout, progress: Terminal.progressBar())
            Tracking.refresh(repo)
            if json {
                struct Out: Encodable { var workspace: String; var branch: String?; var fetch: TransferReport }
                return try Terminal.printJSON(Out(workspace: repo.workspaceRoot ?? dir, branch: branch, fetch: report))
            }
            print("Cloned \(url) into \(repo.workspaceRoot ?? dir) (\(report.objects) objects, \(Terminal.bytes(report.bytes)))\(branch.map { ", on branch \($0)" } ?? " (empty remote)")")
        }
    }
}
