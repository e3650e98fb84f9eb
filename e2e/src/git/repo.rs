//! [`GitRepo`]: a bare repository with files and commits made by the real `git`.

use std::path::{Component, Path, PathBuf};

use tempfile::TempDir;

use super::{git_command, io_err, run, GitError};

/// Seconds since the epoch of the first commit's date; each commit adds one second so
/// commit ids are reproducible and ordered.
const FIRST_COMMIT_EPOCH: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// A full commit id (40 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(pub String);

impl std::fmt::Display for CommitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl CommitId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One change of a commit: a file written (created or replaced) or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Write { path: String, content: Vec<u8> },
    Delete { path: String },
}

impl Change {
    pub fn write(path: impl Into<String>, content: impl AsRef<[u8]>) -> Self {
        Change::Write {
            path: path.into(),
            content: content.as_ref().to_vec(),
        }
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Change::Delete { path: path.into() }
    }

    fn path(&self) -> &str {
        match self {
            Change::Write { path, .. } | Change::Delete { path } => path,
        }
    }
}

/// Checks that a repository file path is relative, non-empty and stays inside the tree
/// (no `..`, no `.git`).
pub fn check_repo_path(path: &str) -> Result<(), GitError> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components().all(|c| match c {
            Component::Normal(n) => n != ".git",
            _ => false,
        });
    if ok {
        Ok(())
    } else {
        Err(GitError::BadPath(path.to_owned()))
    }
}

/// A bare repository `<tmp>/repos/<name>.git` plus the work tree used to commit into it.
/// The temp dir is removed on drop.
#[derive(Debug)]
pub struct GitRepo {
    dir: TempDir,
    name: String,
    branch: String,
    commits: u64,
}

impl GitRepo {
    /// An empty repository (no commits) whose default branch is `branch`.
    pub fn empty(name: &str, branch: &str) -> Result<GitRepo, GitError> {
        check_repo_path(name)?;
        let dir = tempfile::Builder::new()
            .prefix("siteboot-e2e-git-")
            .tempdir()
            .map_err(io_err(Path::new("/tmp")))?;
        let repo = GitRepo {
            dir,
            name: name.to_owned(),
            branch: branch.to_owned(),
            commits: 0,
        };
        for d in [repo.home(), repo.work_tree(), repo.base_path()] {
            std::fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let bare = repo.bare_path();
        run(repo
            .git()
            .args(["init", "--quiet", "--bare", "--initial-branch", branch])
            .arg(&bare))?;
        for (key, value) in [
            ("uploadpack.allowAnySHA1InWant", "true"),
            ("uploadpack.allowFilter", "true"),
            ("core.logAllRefUpdates", "false"),
        ] {
            run(repo.git_bare().args(["config", key, value]))?;
        }
        Ok(repo)
    }

    /// A repository on branch `main` with one commit ("initial") holding `files`.
    pub fn create(name: &str, files: &[(&str, &str)]) -> Result<GitRepo, GitError> {
        Self::create_on_branch(name, "main", files)
    }

    /// A repository on `branch` with one commit ("initial") holding `files`.
    pub fn create_on_branch(
        name: &str,
        branch: &str,
        files: &[(&str, &str)],
    ) -> Result<GitRepo, GitError> {
        let mut repo = Self::empty(name, branch)?;
        let changes: Vec<Change> = files.iter().map(|(p, c)| Change::write(*p, c)).collect();
        repo.commit("initial", &changes)?;
        Ok(repo)
    }

    /// The repository name without `.git` ("fleet").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The branch commits go to.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The directory servers export (`--base-path`, `GIT_PROJECT_ROOT`).
    pub fn base_path(&self) -> PathBuf {
        self.dir.path().join("repos")
    }

    /// The bare repository (`<base>/<name>.git`).
    pub fn bare_path(&self) -> PathBuf {
        self.base_path().join(format!("{}.git", self.name))
    }

    /// The URL path of the repository under a server root ("/fleet.git").
    pub fn url_path(&self) -> String {
        format!("/{}.git", self.name)
    }

    /// A `file://` URL of the bare repository.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare_path().display())
    }

    fn work_tree(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn git(&self) -> std::process::Command {
        git_command(&self.home())
    }

    fn git_bare(&self) -> std::process::Command {
        let mut cmd = self.git();
        cmd.arg("--git-dir").arg(self.bare_path());
        cmd
    }

    fn git_work(&self) -> std::process::Command {
        let mut cmd = self.git_bare();
        cmd.arg("--work-tree").arg(self.work_tree());
        cmd
    }

    /// Applies `changes` to the work tree and commits them to the branch (an empty
    /// change list makes an empty commit). Returns the new commit id.
    pub fn commit(&mut self, message: &str, changes: &[Change]) -> Result<CommitId, GitError> {
        let work = self.work_tree();
        for change in changes {
            check_repo_path(change.path())?;
            let path = work.join(change.path());
            match change {
                Change::Write { content, .. } => {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
                    }
                    std::fs::write(&path, content).map_err(io_err(&path))?;
                }
                Change::Delete { .. } => {
                    std::fs::remove_file(&path).map_err(io_err(&path))?;
                }
            }
        }
        run(self
            .git_work()
            .args(["add", "--all", "."])
            .current_dir(&work))?;
        let date = format!("{} +0000", FIRST_COMMIT_EPOCH + self.commits);
        run(self
            .git_work()
            .args([
                "commit",
                "--quiet",
                "--allow-empty",
                "--no-verify",
                "-m",
                message,
            ])
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .current_dir(&work))?;
        self.commits += 1;
        self.head()
    }

    /// The commit the branch points at.
    pub fn head(&self) -> Result<CommitId, GitError> {
        self.rev_parse(&format!("refs/heads/{}", self.branch))
    }

    /// Resolves a revision (`main`, `refs/heads/x`, a commit id) in the bare repository.
    pub fn rev_parse(&self, rev: &str) -> Result<CommitId, GitError> {
        let out = run(self
            .git_bare()
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("{rev}^{{commit}}")))?;
        Ok(CommitId(out.trim().to_owned()))
    }

    /// Creates or moves branch `name` to `commit` (for rings pinned to a revision).
    pub fn set_branch(&self, name: &str, commit: &CommitId) -> Result<(), GitError> {
        run(self
            .git_bare()
            .args(["update-ref", &format!("refs/heads/{name}"), commit.as_str()]))?;
        Ok(())
    }

    /// Creates a lightweight tag `name` at `commit`.
    pub fn tag(&self, name: &str, commit: &CommitId) -> Result<(), GitError> {
        run(self
            .git_bare()
            .args(["update-ref", &format!("refs/tags/{name}"), commit.as_str()]))?;
        Ok(())
    }

    /// Switches the branch later commits go to (creating it at the current head if new).
    pub fn switch_branch(&mut self, name: &str) -> Result<(), GitError> {
        if self.rev_parse(&format!("refs/heads/{name}")).is_err() {
            let head = self.head()?;
            self.set_branch(name, &head)?;
        }
        run(self
            .git_bare()
            .args(["symbolic-ref", "HEAD", &format!("refs/heads/{name}")]))?;
        self.branch = name.to_owned();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_paths_are_checked() {
        let cases = [
            ("a.yaml", true),
            ("clusters/store-0142/app.yaml", true),
            ("", false),
            ("/etc/passwd", false),
            ("../x", false),
            ("a/../../x", false),
            (".git/config", false),
            ("./a", false),
        ];
        for (path, ok) in cases {
            assert_eq!(check_repo_path(path).is_ok(), ok, "{path}");
        }
    }

    #[test]
    fn commits_write_delete_and_are_reproducible() {
        let mut a = GitRepo::create("fleet", &[("baseline/a.yaml", "a: 1\n")]).unwrap();
        let b = GitRepo::create("fleet", &[("baseline/a.yaml", "a: 1\n")]).unwrap();
        assert_eq!(
            a.head().unwrap(),
            b.head().unwrap(),
            "fixed identity and date"
        );
        assert_eq!(a.head().unwrap().as_str().len(), 40);
        let first = a.head().unwrap();
        let second = a
            .commit(
                "second",
                &[
                    Change::write("regions/eu/b.yaml", "b: 2\n"),
                    Change::delete("baseline/a.yaml"),
                ],
            )
            .unwrap();
        assert_ne!(first, second);
        let tree = run(a
            .git_bare()
            .args(["ls-tree", "-r", "--name-only", second.as_str()]))
        .unwrap();
        assert_eq!(tree.trim(), "regions/eu/b.yaml");
        a.set_branch("ring-0", &first).unwrap();
        assert_eq!(a.rev_parse("ring-0").unwrap(), first);
        assert!(matches!(
            a.commit("bad", &[Change::write("../escape", "x")]),
            Err(GitError::BadPath(_))
        ));
    }
}
