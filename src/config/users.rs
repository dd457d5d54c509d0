//! `[http] users_file`: the people who may use the HTTP API. One line per user,
//! `name:role:$argon2id$…` (the PHC string of an argon2id hash), `#` starts a comment.
//! Both `forewarn check` and the agent read the file through [`parse`], so a file the
//! check accepts is the file the agent serves; `forewarn passwd` writes it through
//! [`set_user`], which replaces the file whole (temporary file, then rename) with mode
//! 0600, so a reader never sees half a file and other local users never see the hashes.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::base::secret::Secret;

/// Argon2id memory cost in KiB. Why: 19 MiB with two passes is the smallest setting
/// OWASP recommends; it keeps one verification in the tens of milliseconds on a small ARM
/// gateway, and the server caches successful checks so that cost is paid once a minute.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes (see [`ARGON2_MEMORY_KIB`]).
pub const ARGON2_PASSES: u32 = 2;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads (GET).
    Viewer,
    /// Reads and actions (POST, PUT, DELETE with a CSRF token).
    Operator,
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            _ => Err(format!("role {s:?} is neither viewer nor operator")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        })
    }
}

/// One line of the users file.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The PHC string; a hash, yet kept out of logs like a password.
    pub hash: Secret,
}

/// Why the users file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}:{line}: {problem}")]
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("cannot write {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

/// The argon2id hasher with the parameters above.
pub fn hasher() -> Argon2<'static> {
    // The parameters are constants within argon2's bounds; `Params::DEFAULT` (the same
    // figures today) stands in should a future version refuse them.
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, None).unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &Secret) -> Result<String, UsersError> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| UsersError::Invalid("no random numbers for a salt".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| UsersError::Invalid(e.to_string()))?;
    hasher()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Invalid(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (its own parameters are used).
pub fn verify(hash: &Secret, password: &[u8]) -> bool {
    match PasswordHash::new(hash.expose()) {
        Ok(h) => hasher().verify_password(password, &h).is_ok(),
        Err(_) => false,
    }
}

/// A user name safe in the file and in a Basic credential: no `:` and no blanks.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("user name {name:?} must have 1 to 64 characters"));
    }
    if name
        .chars()
        .any(|c| c == ':' || c == '#' || c.is_whitespace() || c.is_control())
    {
        return Err(format!("user name {name:?} must not hold ':', '#' or blanks"));
    }
    Ok(())
}

fn parse_line(text: &str) -> Result<Option<User>, String> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let mut parts = text.splitn(3, ':');
    let (Some(name), Some(role), Some(hash)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected name:role:$argon2id$… (made by `forewarn passwd`)".into());
    };
    check_name(name)?;
    let role = role.parse()?;
    let phc = PasswordHash::new(hash).map_err(|e| format!("user {name:?}: the hash is not a PHC string: {e}"))?;
    if phc.algorithm.as_str() != "argon2id" {
        return Err(format!("user {name:?}: the hash is {}, not argon2id", phc.algorithm));
    }
    Ok(Some(User {
        name: name.to_string(),
        role,
        hash: Secret::new(hash),
    }))
}

/// Every user of `text` (the contents of `path`); each problem names the file and line.
pub fn parse_text(path: &Path, text: &str) -> Result<Vec<User>, Vec<UsersError>> {
    let mut users: Vec<User> = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let problem = |problem: String| UsersError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            problem,
        };
        match parse_line(line) {
            Ok(Some(u)) if users.iter().any(|o| o.name == u.name) => {
                problems.push(problem(format!("user {:?} appears twice", u.name)))
            }
            Ok(Some(u)) => users.push(u),
            Ok(None) => {}
            Err(p) => problems.push(problem(p)),
        }
    }
    if problems.is_empty() && users.is_empty() {
        problems.push(UsersError::Invalid(format!(
            "{}: no users; add one with `forewarn passwd {} NAME`",
            path.display(),
            path.display()
        )));
    }
    if problems.is_empty() {
        Ok(users)
    } else {
        Err(problems)
    }
}

/// Reads and parses the users file.
pub fn parse(path: &Path) -> Result<Vec<User>, Vec<UsersError>> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        vec![UsersError::Read {
            path: path.to_path_buf(),
            error,
        }]
    })?;
    parse_text(path, &text)
}

/// Adds `name` with `role` and `password` to the file at `path`, or replaces its line;
/// other lines (comments included) stay as they are. Creates the file if missing.
pub fn set_user(path: &Path, name: &str, role: Role, password: &Secret) -> Result<(), UsersError> {
    check_name(name).map_err(UsersError::Invalid)?;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(UsersError::Read {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    let line = format!("{name}:{role}:{}", hash_password(password)?);
    let mut replaced = false;
    let mut out = String::new();
    for l in old.lines() {
        if l.trim().split(':').next() == Some(name) {
            if !replaced {
                out.push_str(&line);
                out.push('\n');
            }
            replaced = true;
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    if !replaced {
        out.push_str(&line);
        out.push('\n');
    }
    write_atomically(path, &out)
}

fn write_atomically(path: &Path, text: &str) -> Result<(), UsersError> {
    let err = |error| UsersError::Write {
        path: path.to_path_buf(),
        error,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // tempfile creates with mode 0600, which the rename keeps.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(text.as_bytes()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_users_parse_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "# the API's users\n").unwrap();
        set_user(&path, "ann", Role::Viewer, &Secret::new("one")).unwrap();
        set_user(&path, "bob", Role::Operator, &Secret::new("two")).unwrap();
        set_user(&path, "ann", Role::Operator, &Secret::new("three")).unwrap();
        let users = parse(&path).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!((users[0].name.as_str(), users[0].role), ("ann", Role::Operator));
        assert!(verify(&users[0].hash, b"three"));
        assert!(!verify(&users[0].hash, b"one"));
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("# the API's users\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// The cost the API's cache saves: `cargo test --release --lib argon2_verify_cost --
    /// --ignored --nocapture` prints the time of one verification with the parameters above.
    #[test]
    #[ignore]
    fn argon2_verify_cost() {
        let hash = Secret::new(hash_password(&Secret::new("a password")).unwrap());
        let runs = 10;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            assert!(verify(&hash, b"a password"));
        }
        println!(
            "argon2id m={ARGON2_MEMORY_KIB} KiB t={ARGON2_PASSES}: {:?} per verification",
            start.elapsed() / runs
        );
    }

    #[test]
    fn problems_name_the_line() {
        let p = Path::new("users");
        let e = parse_text(p, "# ok\nann:admin:$argon2id$x\nbob\n").unwrap_err();
        let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert!(text[0].starts_with("users:2: role \"admin\""), "{text:?}");
        assert!(text[1].starts_with("users:3: expected name:role"), "{text:?}");
        assert!(parse_text(p, "# nobody\n").is_err());
    }
}
