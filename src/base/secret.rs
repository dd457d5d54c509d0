//! Passwords and tokens. A [`Secret`] prints and serialises as `<redacted>`, so it cannot
//! reach a log line, a `Debug` dump or a published message by accident.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that must never appear in logs or in `Debug` output (a password).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}
