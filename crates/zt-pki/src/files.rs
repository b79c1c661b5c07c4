//! Writing key material safely: private keys `0600`, never silently overwritten.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ca::IssuedLeaf;
use crate::error::PkiError;

/// Whether a file is secret (private key) or public (certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    /// Owner read/write only (`0600`).
    Private,
    /// World readable (`0644`).
    Public,
}

/// Files to write together: either all are written or, if any already exists and `force` is
/// off, none is (so a failed run never leaves a key without its certificate).
#[derive(Debug)]
pub struct Bundle {
    files: Vec<(PathBuf, String, Secrecy)>,
    /// Whether missing parent directories are created (or refused).
    create_dirs: bool,
}

impl Default for Bundle {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            create_dirs: true,
        }
    }
}

impl Bundle {
    /// An empty set of files, whose missing parent directories [`Bundle::write`] creates.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether [`Bundle::write`] creates missing parent directories (the default) or refuses,
    /// writing nothing, with [`PkiError::MissingDirectory`]: a mistyped path must not become
    /// a new directory holding a private key nobody will find.
    pub fn create_dirs(&mut self, create: bool) -> &mut Self {
        self.create_dirs = create;
        self
    }

    /// Adds one file.
    pub fn add(
        &mut self,
        path: impl Into<PathBuf>,
        contents: impl Into<String>,
        secrecy: Secrecy,
    ) -> &mut Self {
        self.files.push((path.into(), contents.into(), secrecy));
        self
    }

    /// Adds a leaf's keystore: `<base>.key` (private) and `<base>.pem` (certificate, public).
    /// The suffixes are appended, never substituted: `certs/api.v2` gives `certs/api.v2.pem`.
    ///
    /// The key is written first: services reload when the certificate changes, and by then
    /// the matching key is already in place.
    pub fn add_leaf(&mut self, base: &Path, leaf: IssuedLeaf) -> &mut Self {
        self.add(leaf_key(base), leaf.key_pem, Secrecy::Private);
        self.add(leaf_cert(base), leaf.cert_pem, Secrecy::Public)
    }

    /// Writes every file, creating parent directories (see [`Bundle::create_dirs`]). Without
    /// `force`, refuses (writing nothing) if any file exists.
    pub fn write(&self, force: bool) -> Result<Vec<PathBuf>, PkiError> {
        if !self.create_dirs
            && let Some(dir) = self
                .files
                .iter()
                .filter_map(|(path, ..)| path.parent())
                .find(|dir| !dir.as_os_str().is_empty() && !dir.is_dir())
        {
            return Err(PkiError::MissingDirectory(dir.to_owned()));
        }
        if !force && let Some((path, ..)) = self.files.iter().find(|(path, ..)| path.exists()) {
            return Err(PkiError::Exists(path.clone()));
        }
        self.files
            .iter()
            .map(|(path, contents, secrecy)| {
                write_file(path, contents, *secrecy)?;
                Ok(path.clone())
            })
            .collect()
    }
}

/// The certificate file of the keystore at `base`: `<base>.pem`.
pub fn leaf_cert(base: &Path) -> PathBuf {
    with_suffix(base, "pem")
}

/// The key file of the keystore at `base`: `<base>.key`.
pub fn leaf_key(base: &Path) -> PathBuf {
    with_suffix(base, "key")
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut path = base.as_os_str().to_owned();
    path.push(".");
    path.push(suffix);
    path.into()
}

/// Writes through a temporary file renamed over the target, so a service reloading the file
/// sees either the old content or the new, never a half-written one, and a key is created
/// with its final mode rather than inheriting a looser one.
fn write_file(path: &Path, contents: &str, secrecy: Secrecy) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".tmp-{}", std::process::id()));
    let temp = PathBuf::from(temp);
    match std::fs::remove_file(&temp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(match secrecy {
            Secrecy::Private => 0o600,
            Secrecy::Public => 0o644,
        });
    }
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&temp, path)) {
        let _ = std::fs::remove_file(&temp);
        return Err(io(e));
    }
    Ok(())
}

/// Reads a whole text file, naming it in the error.
pub fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_suffixes_are_appended() {
        let mut bundle = Bundle::new();
        let leaf = IssuedLeaf {
            cert_pem: "c".into(),
            key_pem: "k".into(),
        };
        bundle.add_leaf(Path::new("certs/api.v2"), leaf);
        let paths: Vec<_> = bundle
            .files
            .iter()
            .map(|(p, _, s)| (p.clone(), *s))
            .collect();
        assert_eq!(
            paths,
            [
                (PathBuf::from("certs/api.v2.key"), Secrecy::Private),
                (PathBuf::from("certs/api.v2.pem"), Secrecy::Public)
            ]
        );
    }
}
