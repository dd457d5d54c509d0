//! Passwords and tokens. A [`Secret`] prints and serialises as `<redacted>`, so it cannot
//! reach a log line, a `Debug` dump, a published message or a hash of the config by
//! accident; the only way to the text is [`Secret::expose`], at the one place that hands
//! it to a protocol library.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that must never appear in logs, `Debug` output or published values.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into())
    }

    /// The secret text, for the client library that sends it; never for a log or a value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_or_serialises_its_text() {
        let s = Secret::new("hunter2");
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
    }
}
