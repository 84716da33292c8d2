//! Validation of where a disk is mounted inside a sandbox (`mount_path`) and
//! which part of the bucket it shows (`sub_path`). An escape attempt is an
//! error, never a mount somewhere else.

use std::path::{Component, Path, PathBuf};

/// Why a mount path or sub path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The mount path does not start with `/`; holds it as given.
    #[error("mount_path must be an absolute path inside the sandbox (start with /), got {0:?}")]
    NotAbsolute(String),
    /// The mount path is `/` (or only slashes and dots).
    #[error("mount_path must not be / itself: mount at a directory such as /mnt/data")]
    Root,
    /// A `..` segment.
    #[error("{field} must not contain '..' (got {value:?})")]
    DotDot {
        /// `mount_path` or `sub_path`.
        field: &'static str,
        /// The path as given.
        value: String,
    },
    /// A NUL byte or other control character.
    #[error("{field} must not contain NUL bytes or control characters")]
    Control {
        /// `mount_path` or `sub_path`.
        field: &'static str,
    },
    /// Longer than 1024 bytes.
    #[error("{field} is too long ({len} bytes, at most {max})")]
    TooLong {
        /// `mount_path` or `sub_path`.
        field: &'static str,
        /// Its length, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// One segment is longer than 255 bytes (the usual file name limit).
    #[error("a path component of {field} is longer than 255 bytes")]
    ComponentTooLong {
        /// `mount_path` or `sub_path`.
        field: &'static str,
    },
    /// The sub path starts with `/`; holds it as given.
    #[error("sub_path must be relative to the bucket: remove the leading '/' (got {0:?})")]
    SubPathAbsolute(String),
    /// An existing component of the mount path under the sandbox root is a symlink.
    #[error("mount_path {path:?} leaves the sandbox through the symlink {link:?}")]
    SymlinkEscape {
        /// The mount path.
        path: String,
        /// The symlink, as a path inside the sandbox.
        link: String,
    },
    /// The mount path is, contains or lies inside another mount of the same sandbox.
    #[error("mount_path {path:?} overlaps {other:?}, already mounted in this sandbox")]
    Overlap {
        /// The mount path asked for.
        path: String,
        /// The existing mount path it overlaps.
        other: String,
    },
}

const MAX_PATH: usize = 1024;

fn check_text(field: &'static str, s: &str) -> Result<(), PathError> {
    if s.chars().any(|c| c.is_control()) {
        return Err(PathError::Control { field });
    }
    if s.len() > MAX_PATH {
        return Err(PathError::TooLong {
            field,
            len: s.len(),
            max: MAX_PATH,
        });
    }
    Ok(())
}

/// A normalised, absolute mount path inside a sandbox: `/a/b`, no `.`, no
/// `..`, no repeated or trailing slashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MountPath(String);

/// The components of a `/`-separated path with empty and `.` ones dropped;
/// `..` and components over 255 bytes are refused.
fn segments<'a>(field: &'static str, raw: &'a str) -> Result<Vec<&'a str>, PathError> {
    let mut parts = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                return Err(PathError::DotDot {
                    field,
                    value: raw.to_string(),
                })
            }
            s if s.len() > 255 => return Err(PathError::ComponentTooLong { field }),
            s => parts.push(s),
        }
    }
    Ok(parts)
}

impl MountPath {
    /// Validates and normalises a mount path as a user gave it (`/mnt//data/.` becomes `/mnt/data`).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        check_text("mount_path", raw)?;
        if !raw.starts_with('/') {
            return Err(PathError::NotAbsolute(raw.to_string()));
        }
        let parts = segments("mount_path", raw)?;
        if parts.is_empty() {
            return Err(PathError::Root);
        }
        Ok(Self(format!("/{}", parts.join("/"))))
    }

    /// The normalised path, `/a/b`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether one of the two paths is the other or lies inside it.
    pub fn overlaps(&self, other: &MountPath) -> bool {
        let (a, b) = (self.as_str(), other.as_str());
        a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
    }

    /// The host directory for this mount path under a sandbox root. Refuses
    /// paths whose existing components include a symlink: a symlink inside
    /// the sandbox could point anywhere on the host.
    pub fn host_path(&self, root: &Path) -> Result<PathBuf, PathError> {
        let mut cur = root.to_path_buf();
        for seg in self.0.split('/').filter(|s| !s.is_empty()) {
            cur.push(seg);
            if let Ok(meta) = std::fs::symlink_metadata(&cur) {
                if meta.file_type().is_symlink() {
                    return Err(PathError::SymlinkEscape {
                        path: self.0.clone(),
                        link: cur
                            .strip_prefix(root)
                            .map(|p| format!("/{}", p.display()))
                            .unwrap_or_default(),
                    });
                }
            }
        }
        debug_assert!(cur.components().all(|c| !matches!(c, Component::ParentDir)));
        Ok(cur)
    }

    /// Checks that this path overlaps none of `existing`.
    pub fn check_free<'a>(&self, existing: impl IntoIterator<Item = &'a MountPath>) -> Result<(), PathError> {
        match existing.into_iter().find(|o| self.overlaps(o)) {
            Some(o) => Err(PathError::Overlap {
                path: self.0.clone(),
                other: o.0.clone(),
            }),
            None => Ok(()),
        }
    }
}

impl std::fmt::Display for MountPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A normalised key prefix inside the bucket: empty (the whole bucket) or
/// `a/b/` (always ending in `/`, so `team-a` never shows `team-ab/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SubPath(String);

impl SubPath {
    /// Validates and normalises a sub path as a user gave it (`a//b/.` becomes `a/b/`; `""` stays empty).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        check_text("sub_path", raw)?;
        if raw.starts_with('/') {
            return Err(PathError::SubPathAbsolute(raw.to_string()));
        }
        let parts = segments("sub_path", raw)?;
        if parts.is_empty() {
            return Ok(Self(String::new()));
        }
        Ok(Self(format!("{}/", parts.join("/"))))
    }

    /// The key prefix (`""` or ending in `/`).
    pub fn as_prefix(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_normalised() {
        assert_eq!(MountPath::parse("/mnt//data/./").unwrap().as_str(), "/mnt/data");
        assert_eq!(MountPath::parse("/data").unwrap().as_str(), "/data");
    }

    #[test]
    fn mount_path_escapes_are_refused() {
        assert!(matches!(MountPath::parse("mnt/data"), Err(PathError::NotAbsolute(_))));
        assert!(matches!(MountPath::parse("/mnt/../etc"), Err(PathError::DotDot { .. })));
        assert!(matches!(MountPath::parse("/"), Err(PathError::Root)));
        assert!(matches!(MountPath::parse("//./"), Err(PathError::Root)));
        assert!(matches!(MountPath::parse("/a\0b"), Err(PathError::Control { .. })));
        assert!(matches!(
            MountPath::parse(&format!("/{}", "x".repeat(300))),
            Err(PathError::ComponentTooLong { .. })
        ));
    }

    #[test]
    fn overlap_is_by_component_not_by_string_prefix() {
        let a = MountPath::parse("/mnt/data").unwrap();
        assert!(a.overlaps(&MountPath::parse("/mnt/data").unwrap()));
        assert!(a.overlaps(&MountPath::parse("/mnt/data/sub").unwrap()));
        assert!(a.overlaps(&MountPath::parse("/mnt").unwrap()));
        assert!(!a.overlaps(&MountPath::parse("/mnt/database").unwrap()));
        assert!(a.check_free([&MountPath::parse("/mnt/other").unwrap()]).is_ok());
        assert!(matches!(
            a.check_free([&MountPath::parse("/mnt").unwrap()]),
            Err(PathError::Overlap { .. })
        ));
    }

    #[test]
    fn sub_paths_are_relative_prefixes() {
        assert_eq!(SubPath::parse("team-a").unwrap().as_prefix(), "team-a/");
        assert_eq!(SubPath::parse("team-a//x/").unwrap().as_prefix(), "team-a/x/");
        assert_eq!(SubPath::parse("").unwrap().as_prefix(), "");
        assert!(matches!(SubPath::parse("/team-a"), Err(PathError::SubPathAbsolute(_))));
        assert!(matches!(SubPath::parse("a/../b"), Err(PathError::DotDot { .. })));
    }

    #[test]
    fn symlinks_in_the_sandbox_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("mnt")).unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("mnt/evil")).unwrap();
        let p = MountPath::parse("/mnt/evil/data").unwrap();
        assert!(matches!(p.host_path(root.path()), Err(PathError::SymlinkEscape { .. })));
        let ok = MountPath::parse("/mnt/data").unwrap().host_path(root.path()).unwrap();
        assert_eq!(ok, root.path().join("mnt/data"));
    }
}
