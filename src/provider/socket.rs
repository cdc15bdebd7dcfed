//! The provider's Unix socket: owner-only from the first moment, a stale socket replaced,
//! anything else at the path left alone.
//!
//! Without `unsafe` (no umask or fchmod before bind), the socket is bound inside a fresh
//! private directory (mode 0700) next to the final path, chmod-ed to 0600 there, and then
//! renamed into place: nobody else can reach it before its mode is final.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::Path;
use tokio::net::UnixListener;

/// Removes `path` if it is a socket; refuses if it is anything else.
pub fn remove_stale(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; refusing to remove it",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Binds a listener at `path` with mode 0600.
pub fn bind_private(path: &Path) -> io::Result<UnixListener> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)?;
    remove_stale(path)?;
    let staging = parent.join(format!(
        ".{}.{}.staging",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    if let Ok(m) = std::fs::symlink_metadata(&staging) {
        if m.is_dir() {
            std::fs::remove_dir_all(&staging)?;
        } else {
            std::fs::remove_file(&staging)?;
        }
    }
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let result = (|| {
        let tmp = staging.join(file_name);
        let listener = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_owner_only_and_replaces_only_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/kvault.sock");
        let l = bind_private(&path).unwrap();
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert!(m.file_type().is_socket());
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        tokio::net::UnixStream::connect(&path).await.unwrap();
        drop(l);
        // A stale socket is replaced.
        let _l2 = bind_private(&path).unwrap();
        tokio::net::UnixStream::connect(&path).await.unwrap();
        // No staging directory is left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        // A regular file is never removed.
        let file = dir.path().join("file.sock");
        std::fs::write(&file, b"keep").unwrap();
        let e = bind_private(&file).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    }
}
