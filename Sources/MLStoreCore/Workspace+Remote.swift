import MLStoreBasics

extension Repository {
    /// The remote a partial clone fetches missing contents from (`remote.<name>.partial = true`).
    public func partialRemote() throws -> String? {
        let cfg = try config()
        return try remotes().first { cfg.get("remote.\($0.name).partial") == "true" }?.name
    }

    /// Fetches the given content objects (and their chunks) from a remote.
    public func fetchContent(_ ids: Set<ObjectID>, from remoteName: String, progress: ProgressReporter? = nil) throws -> TransferReport {
        let (_, remote) = try transport(named: remoteName)
        try remote.open(create: false)
        var report = TransferReport(remote: remote.location)
        try fetchObjects(remote: remote, roots: [], content: .only(ids), report: &report, progress: progress)
        return report
    }

    /// Clones a remote into `directory`: fetches everything (or, with `partial`, only metadata), creates
    /// the default branch, tags and stages, and checks out the branch (recording stat data, so the first
    /// `status` reads no file). On failure, the new directory is removed.
    public static func clone(url: String, into directory: String, partial: Bool = false, checkout: Bool = true,
                             progress: ProgressReporter? = nil) throws -> (repo: Repository, report: TransferReport, branch: String?) {
        let dir = Path.absolute(directory, base: Sys.currentDirectory())
        if let st = try Sys.lstatIfExists(dir) {
            guard st.isDirectory, try Sys.listDirectory(dir).isEmpty else {
                throw MLStoreError(.conflict, "\(dir) already exists and is not an empty directory", hint: "clone into a new directory")
            }
        }
        let createdDir = (try Sys.lstatIfExists(dir)) == nil
        do {
            // Check the remote before creating anything.
            let absoluteURL = url.contains("://") ? url : Path.absolute(url, base: Sys.currentDirectory())
            try transport(for: absoluteURL).open(create: false)
            let repo = try initialize(at: dir)
            try repo.addRemote(name: "origin", url: absoluteURL)
            if partial {
                var cfg = try repo.config()
                cfg.set("remote.origin.partial", "true")
                try cfg.save()
            }
            let report = try repo.fetch(from: "origin", content: partial ? .none : .all, progress: progress)
            let (_, remote) = try repo.transport(named: "origin")
            let actor = try repo.identity()
            let heads = repo.refs.list("refs/remotes/origin/").filter {
                !$0.name.hasPrefix("refs/remotes/origin/stages/") && !$0.name.hasPrefix("refs/remotes/origin/models/")
            }
            var branch = try remote.defaultBranch()
            let branchExists = try branch.map { try repo.refs.read("refs/remotes/origin/\($0)") != nil } ?? false
            if !branchExists {
                branch = heads.first { $0.name == "refs/remotes/origin/main" }.map { _ in "main" } ?? heads.first.map { String($0.name.dropFirst(20)) }
            }
            for (name, id) in repo.refs.list("refs/remotes/origin/stages/") {
                try repo.refs.update("refs/stages/" + name.dropFirst("refs/remotes/origin/stages/".count), to: id, expecting: .absent, actor: actor, message: "clone")
            }
            for (name, id) in repo.refs.list("refs/remotes/origin/models/") {
                try repo.refs.update("refs/models/" + name.dropFirst("refs/remotes/origin/models/".count), to: id, expecting: .absent, actor: actor, message: "clone")
            }
            if let branch, let id = try repo.refs.read("refs/remotes/origin/\(branch)") {
                try repo.refs.update("refs/heads/\(branch)", to: id, expecting: .absent, actor: actor, message: "clone: from \(absoluteURL)")
                try repo.refs.setHead(.branch(branch, id), message: "clone", actor: actor)
                if checkout {
                    let ws = try Workspace(repo)
                    _ = try ws.checkout(tree: try repo.commit(id).tree, progress: progress)
                }
            }
            return (repo, report, branch)
        } catch {
            if createdDir { TempRemoval.removeTree(dir) } else { TempRemoval.emptyDirectory(dir) }
            throw error
        }
    }
}

/// What `pull` did to the current branch.
public struct PullOutcome: Sendable, Codable {
    public enum Kind: String, Sendable, Codable { case upToDate = "up-to-date", fastForward = "fast-forward", created, ahead, pathsRestored = "paths-restored" }
    public var kind: Kind
    public var branch: String
    public var from: ObjectID?
    public var to: ObjectID?
    public var checkout: CheckoutReport?
    public var stagesUpdated: [String] = []
}

extension Workspace {
    /// Fetches, then fast-forwards the current branch to its remote-tracking branch and checks it out;
    /// with `paths`, only restores those paths from the remote branch (fetching only their contents).
    public func pull(from remoteName: String, paths: [String]? = nil, progress: ProgressReporter? = nil) throws -> (TransferReport, PullOutcome) {
        guard case .branch(let branch, let local) = try repo.refs.head() else {
            throw MLStoreError(.usage, "HEAD is detached: pull needs a branch", hint: "switch to a branch first")
        }
        let partial = try repo.partialRemote() == remoteName
        let report = try repo.fetch(from: remoteName, content: partial || paths != nil ? .none : .all, progress: progress)
        guard let remote = try repo.refs.read("refs/remotes/\(remoteName)/\(branch)") else {
            throw MLStoreError(.notFound, "the remote \(remoteName) has no branch \(branch)", hint: "push it first, or pull another branch")
        }
        var outcome = PullOutcome(kind: .upToDate, branch: branch, from: local, to: remote)
        if let paths {
            let tree = try repo.commit(remote).tree
            var wanted = Set<ObjectID>()
            for p in paths {
                guard let e = try repo.lookup(p, in: tree) else {
                    throw MLStoreError(.notFound, "'\(p)' is not in \(remoteName)/\(branch)")
                }
                wanted.insert(e.id)
            }
            _ = try repo.fetchContent(wanted, from: remoteName, progress: progress)
            outcome.checkout = try checkout(tree: tree, paths: paths, progress: progress)
            outcome.kind = .pathsRestored
            return (report, outcome)
        }
        let actor = try repo.identity()
        if local == remote {
            outcome.kind = .upToDate
        } else if let local, try repo.isAncestor(remote, of: local) {
            outcome.kind = .ahead
        } else if try local.map({ try repo.isAncestor($0, of: remote) }) ?? true {
            outcome.checkout = try checkout(tree: try repo.commit(remote).tree, progress: progress)
            try repo.refs.update("refs/heads/" + branch, to: remote, expecting: local.map { .value($0) } ?? .absent, actor: actor,
                                 message: "pull: fast-forward to \(remoteName)/\(branch)")
            outcome.kind = local == nil ? .created : .fastForward
        } else {
            throw MLStoreError(.conflict, "\(branch) and \(remoteName)/\(branch) have diverged (each has commits the other lacks)",
                               hint: "mlstore cannot merge yet: keep your work on a new branch (`mlstore branch mine`), then `mlstore checkout --force \(remoteName)/\(branch)` or recommit on top of it")
        }
        // Model version chains: take the remote's when it extends ours.
        for (name, id) in repo.refs.list("refs/remotes/\(remoteName)/models/") {
            let localRef = "refs/models/" + name.dropFirst("refs/remotes/\(remoteName)/models/".count)
            let mine = try repo.refs.read(localRef)
            if mine == id { continue }
            if try mine.map({ try repo.isModelAncestor($0, of: id) }) ?? true {
                try repo.refs.update(localRef, to: id, expecting: mine.map { .value($0) } ?? .absent, actor: actor, message: "pull")
            }
        }
        // Stage refs: take the remote's history when it extends ours.
        for (name, id) in repo.refs.list("refs/remotes/\(remoteName)/stages/") {
            let localRef = "refs/stages/" + name.dropFirst("refs/remotes/\(remoteName)/stages/".count)
            let mine = try repo.refs.read(localRef)
            if mine == id { continue }
            if try mine.map({ try repo.isStageAncestor($0, of: id) }) ?? true {
                try repo.refs.update(localRef, to: id, expecting: mine.map { .value($0) } ?? .absent, actor: actor, message: "pull")
                outcome.stagesUpdated.append(String(localRef.dropFirst(12)))
            }
        }
        return (report, outcome)
    }
}

/// Removal of a partly created directory after a failed clone.
enum TempRemoval {
    static func removeTree(_ path: String) {
        guard let st = try? Sys.lstatIfExists(path) else { return }
        if st.isDirectory {
            for (n, _) in (try? Sys.listDirectory(path)) ?? [] { removeTree(path + "/" + n) }
            try? Sys.rmdir(path)
        } else {
            _ = try? Sys.unlink(path)
        }
    }

    static func emptyDirectory(_ path: String) {
        for (n, _) in (try? Sys.listDirectory(path)) ?? [] { removeTree(path + "/" + n) }
    }
}
