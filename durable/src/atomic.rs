//! Atomic file replacement for everything `canaryc` writes: `-o` of `manifest` and `compile`, the policy
//! `fmt` and each rollout step rewrite, and a rollout's state file.
//!
//! Envoy reloads a watched file (ECDS, RDS) when a file is *moved* into its directory, and a ConfigMap sync or
//! a file watcher may read at any moment: a file written in place can be seen half-written. So the new content
//! goes to a temporary file in the same directory (a rename is atomic only within one file system), is flushed
//! to disk, and is renamed over the target. A reader sees the old file or the new one, never a mix; on any
//! error the temporary file is removed and the target is untouched (for `fmt`: the user's policy is never left
//! half-written by a full disk or a kill). A target that exists keeps its permissions. A symlink at `path` is
//! replaced, not written through: the rename must land in the directory Envoy watches; `fmt` resolves its
//! files first, so a linked policy file is rewritten where it lives.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Replaces `path` with `contents` atomically (see the module doc). The temporary file is
/// `PATH.tmp-PID-N` beside it.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path)?;
    let written = write_synced(&tmp, contents)
        .and_then(|()| match std::fs::metadata(path) {
            Ok(old) => std::fs::set_permissions(&tmp, old.permissions()),
            Err(_) => Ok(()),
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable; a directory that cannot be opened (some platforms) is not an error.
    if let Ok(dir) = File::open(parent(path)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn write_synced(tmp: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(tmp)?;
    file.write_all(contents)?;
    file.sync_all()
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `PATH.tmp-PID-N`: unique per process and call, so concurrent writers never share a temporary file.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name =
        path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the output path names no file"))?;
    let mut tmp = name.to_os_string();
    tmp.push(format!(".tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    Ok(parent(path).join(tmp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("canary-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(d: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[cfg(unix)]
    #[test]
    fn keeps_the_permissions_of_the_file_it_replaces() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir("perms");
        let target = d.join("policy.canary");
        std::fs::write(&target, b"old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(entries(&d), ["policy.canary"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let d = dir("replace");
        let target = d.join("frontend.yaml");
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert_eq!(entries(&d), ["frontend.yaml"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let d = dir("fail");
        // Renaming a file over a non-empty directory fails: the target (the directory) must stay as it was.
        let target = d.join("busy");
        std::fs::create_dir_all(target.join("inside")).unwrap();
        assert!(write_atomic(&target, b"new").is_err());
        assert!(target.join("inside").is_dir());
        assert_eq!(entries(&d), ["busy"], "the temporary file is removed");
        assert!(write_atomic(&d.join("missing-dir/x.yaml"), b"x").is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn temporary_names_are_beside_the_target_and_unique() {
        let a = temp_path(Path::new("/etc/canary/frontend.yaml")).unwrap();
        let b = temp_path(Path::new("/etc/canary/frontend.yaml")).unwrap();
        assert_eq!(a.parent(), Some(Path::new("/etc/canary")));
        assert!(a.file_name().unwrap().to_string_lossy().starts_with("frontend.yaml.tmp-"));
        assert_ne!(a, b);
        assert_eq!(temp_path(Path::new("x.yaml")).unwrap().parent(), Some(Path::new(".")));
    }
}
