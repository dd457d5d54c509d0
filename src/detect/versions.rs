//! Versioned model files. The current model of an asset is its configured file (what the
//! agent loads); writing a new one gives it the next version number and keeps the one it
//! replaces next to it as `<stem>.v<N>.<ext>` (`pump.json` → `pump.v3.json`), so a bad model
//! can be rolled back. The last [`KEEP_VERSIONS`] previous files are kept, older ones are
//! removed. A candidate that retraining did not promote is written as `<stem>.shadow.<ext>`
//! and never loaded by the agent.
//!
//! Version numbers never repeat: a new model gets one more than the highest version among
//! the current file and the kept ones, also after a rollback. Every file is written under a
//! temporary name and renamed ([`Model::save`]), so a reload never reads half a model.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::model::{Model, ModelError};

/// Previous versions kept next to the current file.
pub const KEEP_VERSIONS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: no model file to roll back")]
    NoCurrent(String),
    #[error("{path}: no previous version older than the current version {current} is kept")]
    NoPrevious { path: String, current: u64 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VersionError + '_ {
    move |source| VersionError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `(stem, extension)` of the current file; extension `json` when it has none.
fn parts(path: &Path) -> (String, String) {
    let stem = path
        .file_stem()
        .map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or_else(|| "json".to_string(), |e| e.to_string_lossy().into_owned());
    (stem, ext)
}

/// Where version `n` of the model at `path` is kept.
pub fn version_path(path: &Path, n: u64) -> PathBuf {
    let (stem, ext) = parts(path);
    path.with_file_name(format!("{stem}.v{n}.{ext}"))
}

/// Where the shadow candidate of the model at `path` is written.
pub fn shadow_path(path: &Path) -> PathBuf {
    let (stem, ext) = parts(path);
    path.with_file_name(format!("{stem}.shadow.{ext}"))
}

/// The versions kept for the model at `path`, `(version, file)`, oldest first.
pub fn kept_versions(path: &Path) -> Result<Vec<(u64, PathBuf)>, VersionError> {
    let (stem, ext) = parts(path);
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let (prefix, suffix) = (format!("{stem}.v"), format!(".{ext}"));
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut out: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(&prefix)?.strip_suffix(&suffix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The version written in a model file, without checking the rest of it: a file this
/// forewarn cannot load still has a number that must not be reused. `None` if unreadable.
fn file_version(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(value.get("version").and_then(|v| v.as_u64()).unwrap_or(0))
}

/// The version the next model written for `path` gets.
pub fn next_version(path: &Path) -> Result<u64, VersionError> {
    let kept = kept_versions(path)?.last().map_or(0, |(n, _)| *n);
    let current = file_version(path).unwrap_or(0);
    Ok(kept.max(current) + 1)
}

/// What [`save_version`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub version: u64,
    /// Where the model it replaced is kept, if there was one.
    pub kept: Option<PathBuf>,
}

/// Writes `model` as the current file at `path` with the next version number, keeping
/// the file it replaces and removing kept versions beyond [`KEEP_VERSIONS`]. A file from
/// before versions existed is kept as version 0; one that is not JSON at all is replaced.
pub fn save_version(model: &mut Model, path: &Path) -> Result<Saved, VersionError> {
    model.version = next_version(path)?;
    let kept = match file_version(path) {
        Some(old) => {
            // Copied, not moved: until the new file is renamed over it, the current model
            // stays in place for a reload or a crash. A version number is on disk once;
            // a stray copy of it is replaced.
            let to = version_path(path, old);
            std::fs::copy(path, &to).map_err(io(path))?;
            Some(to)
        }
        None => None,
    };
    model.save(path)?;
    prune(path)?;
    Ok(Saved {
        version: model.version,
        kept,
    })
}

/// Writes `model` as the shadow candidate of `path`, numbered as the next version would
/// be (the number is not taken: a later promotion may use it).
pub fn save_shadow(model: &mut Model, path: &Path) -> Result<PathBuf, VersionError> {
    model.version = next_version(path)?;
    let shadow = shadow_path(path);
    model.save(&shadow)?;
    Ok(shadow)
}

fn prune(path: &Path) -> Result<(), VersionError> {
    let kept = kept_versions(path)?;
    let extra = kept.len().saturating_sub(KEEP_VERSIONS);
    for (_, p) in &kept[..extra] {
        std::fs::remove_file(p).map_err(io(p))?;
    }
    Ok(())
}

/// What [`rollback`] did: version `from` was current and is kept, `to` is current now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    pub from: u64,
    pub to: u64,
    pub kept: PathBuf,
}

/// Makes the newest kept version older than the current one the current file; the
/// current file is kept under its own version, so rolling back twice goes two back.
pub fn rollback(path: &Path) -> Result<Rollback, VersionError> {
    let shown = path.display().to_string();
    let Some(from) = file_version(path) else {
        return Err(VersionError::NoCurrent(shown));
    };
    let previous = kept_versions(path)?.into_iter().rev().find(|(n, _)| *n < from);
    let Some((to, file)) = previous else {
        return Err(VersionError::NoPrevious {
            path: shown,
            current: from,
        });
    };
    // Refuse a kept file that would not load before touching the current one.
    Model::load(&file)?;
    // Copy, then rename over: there is a loadable current file at every moment.
    let kept = version_path(path, from);
    std::fs::copy(path, &kept).map_err(io(path))?;
    std::fs::rename(&file, path).map_err(io(&file))?;
    Ok(Rollback { from, to, kept })
}

/// Which role a model file plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Current,
    Kept,
    Shadow,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Current => "current",
            Role::Kept => "previous",
            Role::Shadow => "shadow",
        }
    }
}

/// One model file of an asset, as `model list` shows it.
#[derive(Debug)]
pub struct Entry {
    pub role: Role,
    pub path: PathBuf,
    /// The model, or why it does not load.
    pub model: Result<Model, ModelError>,
    /// When the file was written.
    pub written: Option<SystemTime>,
}

/// Every model file of `path`: kept versions oldest first, then the current file and the
/// shadow, where they exist.
pub fn list(path: &Path) -> Result<Vec<Entry>, VersionError> {
    let mut files: Vec<(Role, PathBuf)> = kept_versions(path)?.into_iter().map(|(_, p)| (Role::Kept, p)).collect();
    files.push((Role::Current, path.to_path_buf()));
    files.push((Role::Shadow, shadow_path(path)));
    Ok(files
        .into_iter()
        .filter(|(_, p)| p.exists())
        .map(|(role, p)| Entry {
            role,
            model: Model::load(&p),
            written: std::fs::metadata(&p).and_then(|m| m.modified()).ok(),
            path: p,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::train::{train, TrainOptions};

    fn model() -> Model {
        let mut rng = fastrand::Rng::with_seed(1);
        let v: Vec<(i64, Vec<f64>)> = (0..100).map(|i| (i * 1000, vec![rng.f64(), rng.f64()])).collect();
        train("m", &["a".into(), "b".into()], &v, &TrainOptions::default(), "test").unwrap()
    }

    #[test]
    fn a_file_from_before_versions_is_kept_as_version_0_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        model().save(&path).unwrap();
        assert!(matches!(
            rollback(&path),
            Err(VersionError::NoPrevious { current: 0, .. })
        ));
        let saved = save_version(&mut model(), &path).unwrap();
        assert_eq!(
            saved,
            Saved {
                version: 1,
                kept: Some(dir.path().join("m.v0.json"))
            }
        );
        let r = rollback(&path).unwrap();
        assert_eq!((r.from, r.to), (1, 0));
        assert_eq!(Model::load(&path).unwrap().version, 0);
        assert_eq!(
            next_version(&path).unwrap(),
            2,
            "version 1 is kept, so it is not reused"
        );
    }

    #[test]
    fn a_kept_file_that_does_not_load_is_refused_and_the_current_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        save_version(&mut model(), &path).unwrap();
        save_version(&mut model(), &path).unwrap();
        std::fs::write(version_path(&path, 1), "{\"format\": 1}").unwrap();
        assert!(matches!(rollback(&path), Err(VersionError::Model(_))));
        assert_eq!(Model::load(&path).unwrap().version, 2);
        assert!(matches!(
            rollback(&dir.path().join("none.json")),
            Err(VersionError::NoCurrent(_))
        ));
        let shadow = save_shadow(&mut model(), &path).unwrap();
        assert_eq!(Model::load(&shadow).unwrap().version, 3);
        let roles: Vec<Role> = list(&path).unwrap().iter().map(|e| e.role).collect();
        assert_eq!(roles, vec![Role::Kept, Role::Current, Role::Shadow]);
    }
}
