import MLStoreBasics

extension Workspace {
    /// Switches to a branch: makes the workspace match its commit (keeping local edits the switch does
    /// not touch; refusing to lose others unless `force`) and points HEAD at it. With `create`, the
    /// branch is first created at `startPoint` (default HEAD).
    public func switchBranch(_ name: String, create: Bool = false, startPoint: String? = nil, force: Bool = false,
                             progress: ProgressReporter? = nil) throws -> CheckoutReport {
        let ref = "refs/heads/" + name
        try Refs.validate(ref)
        let actor = try repo.identity()
        var target = try repo.refs.read(ref)
        if create {
            let start = try startPoint.map { try repo.resolveCommit($0) } ?? repo.refs.head().commit
            if let start {
                try repo.refs.update(ref, to: start, expecting: .absent, actor: actor, message: "branch: created from \(startPoint ?? "HEAD")")
            } else if target != nil {
                throw MLStoreError(.conflict, "branch \(name) already exists")
            }
            target = start
        } else if target == nil {
            throw MLStoreError(.notFound, "no branch named \(name)", hint: "create it with `mlstore switch -c \(name)`")
        }
        var report = CheckoutReport()
        if let target {
            report = try checkout(tree: try repo.commit(target).tree, options: .init(force: force), progress: progress)
        }
        let from = (try? repo.refs.head().branchName).flatMap { $0 } ?? "detached HEAD"
        try repo.refs.setHead(.branch(name, target), message: "switch: moving from \(from) to \(name)", actor: actor)
        return report
    }

    /// Detaches HEAD at a commit and makes the workspace match it.
    public func detach(at revision: String, force: Bool = false, progress: ProgressReporter? = nil) throws -> (ObjectID, CheckoutReport) {
        let id = try repo.resolveCommit(revision)
        let report = try checkout(tree: try repo.commit(id).tree, options: .init(force: force), progress: progress)
        try repo.refs.setHead(.detached(id), message: "checkout: moving to \(revision)", actor: try repo.identity())
        return (id, report)
    }
}
